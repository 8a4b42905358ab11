import json

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.lab_state import (
    LabStateError,
    default_home,
    load_state,
)


@pytest.mark.parametrize(
    ("environ", "euid", "expected"),
    [
        ({"MTTR_HOME": "/srv/lab", "HOME": "/home/a"}, 1000, "/srv/lab"),
        ({"MTTR_HOME": "/srv/lab"}, 0, "/srv/lab"),
        ({"HOME": "/home/a", "XDG_STATE_HOME": "/home/a/state"}, 1000, "/home/a/state/mttr"),
        ({}, 0, "/var/lib/mttr"),
    ],
)
def test_default_home(environ, euid, expected, monkeypatch):
    if "HOME" in environ:
        monkeypatch.setenv("HOME", environ["HOME"])
    assert default_home(environ, euid) == expected


def test_default_home_falls_back_to_local_state(monkeypatch):
    monkeypatch.setenv("HOME", "/home/b")
    assert default_home({}, 1000) == "/home/b/.local/state/mttr"


def test_load_state_reads_json(tmp_path):
    (tmp_path / "lab.json").write_text(json.dumps({"ports": {"pg1": 1}}))
    assert load_state(str(tmp_path)) == {"ports": {"pg1": 1}}


def test_load_state_missing_says_what_to_do(tmp_path):
    with pytest.raises(LabStateError, match="mttr lab up"):
        load_state(str(tmp_path))


def test_load_state_corrupt(tmp_path):
    (tmp_path / "lab.json").write_text("{not json")
    with pytest.raises(LabStateError, match="cannot read the lab state"):
        load_state(str(tmp_path))
