"""The snapshot and snapshot_rollback modules through the unit-test harness, on real release trees.

Restart commands run as real processes through ``AnsibleModule.run_command``. The ``lvm`` provider is driven
through the module too, where this machine's reality (no device-mapper driver) is the expected failure.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_release import HISTORY
from ansible_collections.mttr.recovery.plugins.modules import snapshot, snapshot_rollback
from ansible_collections.mttr.recovery.tests.support.snapshots import link_target, make_releases
from ansible_collections.mttr.recovery.tests.unit.plugins.modules.utils import AnsibleFailJson, run_module


@pytest.fixture
def tree(tmp_path):
    """``(options for the release provider, current link, restart marker)`` with 1.0.0 .. 1.2.0, 1.2.0 current."""
    releases_dir, current_link = make_releases(tmp_path, ["1.0.0", "1.1.0", "1.2.0"], current="1.2.0")
    options = {"provider": "release", "releases_dir": releases_dir, "current_link": current_link}
    return options, current_link, str(tmp_path / "restarted")


def history_path(current_link):
    return os.path.join(os.path.dirname(current_link), HISTORY)


# ----------------------------------------------------------------------------- snapshot_rollback


def test_rollback_to_previous_and_restart(tree):
    options, current_link, marker = tree
    result = run_module(snapshot_rollback, dict(options, restart_command=["touch", marker]))
    assert result["changed"] is True
    assert (result["previous"], result["current"]) == ("1.2.0", "1.1.0")
    assert result["restarted"] is True and os.path.exists(marker)
    assert "diff" not in result  # diff mode is off
    assert link_target(current_link) == "1.1.0"


def test_rollback_check_mode_with_diff(tree):
    options, current_link, marker = tree
    before = os.readlink(current_link)
    result = run_module(
        snapshot_rollback,
        dict(options, to="1.0.0", restart_command=["touch", marker], _ansible_check_mode=True, _ansible_diff=True),
    )
    assert result["changed"] is True and result["restarted"] is False
    assert result["diff"] == {"before": {"current": "1.2.0"}, "after": {"current": "1.0.0"}}
    assert result["msg"] == f"would switch {current_link} from 1.2.0 to 1.0.0"
    assert os.readlink(current_link) == before
    assert not os.path.exists(marker) and not os.path.exists(history_path(current_link))


def test_rollback_already_current(tree):
    options, current_link, marker = tree
    result = run_module(snapshot_rollback, dict(options, to="1.2.0", restart_command=["touch", marker]))
    assert result["changed"] is False and result["current"] == "1.2.0"
    assert link_target(current_link) == "1.2.0"
    assert not os.path.exists(marker)


def test_rollback_restart_failure(tree):
    options, current_link, _marker = tree
    result = run_module(
        snapshot_rollback, dict(options, restart_command=["sh", "-c", "echo unit failed >&2; exit 3"]), AnsibleFailJson
    )
    assert result["failed"] is True
    assert "the restart command failed (rc 3): unit failed; the release switch stays in place" in result["msg"]
    assert link_target(current_link) == "1.1.0"
    # the link was switched: changed says so, and what to switch back to, so the role can undo it
    assert result["changed"] is True and result["previous"] == "1.2.0" and result["current"] == "1.1.0"


def test_rollback_restart_command_that_cannot_run(tree):
    options, current_link, _marker = tree
    result = run_module(snapshot_rollback, dict(options, restart_command=["/nonexistent/restart-app"]), AnsibleFailJson)
    assert "cannot run the restart command /nonexistent/restart-app" in result["msg"]
    assert result["changed"] is True and result["previous"] == "1.2.0" and result["current"] == "1.1.0"
    assert link_target(current_link) == "1.1.0"


def test_rollback_missing_releases_dir(tmp_path):
    args = {"provider": "release", "releases_dir": str(tmp_path / "missing"), "current_link": str(tmp_path / "cur")}
    result = run_module(snapshot_rollback, args, AnsibleFailJson)
    assert result["msg"] == f"no releases directory at {tmp_path / 'missing'}"


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        ({"provider": "release", "current_link": "/srv/app/current"}, "releases_dir"),
        ({"provider": "release"}, "releases_dir, current_link"),
        ({"provider": "lvm", "vg": "vg0"}, "lv"),
        ({"provider": "ebs", "device": "/dev/xvdf"}, "instance_id"),
    ],
)
def test_rollback_required_if(args, missing):
    result = run_module(snapshot_rollback, args, AnsibleFailJson)
    assert result["msg"] == f"provider is {args['provider']} but all of the following are missing: {missing}"


def test_rollback_unknown_provider():
    result = run_module(snapshot_rollback, {"provider": "zfs"}, AnsibleFailJson)
    assert "value of provider must be one of: release, lvm, ebs, got: zfs" in result["msg"]


# ----------------------------------------------------------------------------- snapshot


def test_snapshot_lists_the_releases(tree):
    """Every call returns the provider's snapshots; in check mode it is a plain listing that writes nothing."""
    options, current_link, _marker = tree
    result = run_module(snapshot, dict(options, _ansible_check_mode=True))
    assert result["changed"] is True and result["snapshot"] == {"id": "1.2.0"}
    releases_dir = options["releases_dir"]
    assert result["snapshots"] == [
        {"id": "1.0.0", "current": False, "path": os.path.join(releases_dir, "1.0.0")},
        {"id": "1.1.0", "current": False, "path": os.path.join(releases_dir, "1.1.0")},
        {"id": "1.2.0", "current": True, "path": os.path.join(releases_dir, "1.2.0")},
    ]
    assert not os.path.exists(history_path(current_link))


def test_snapshot_mark_then_roll_back_to_it(tree):
    options, current_link, _marker = tree
    check = run_module(snapshot, dict(options, _ansible_check_mode=True))
    assert check["changed"] is True and not os.path.exists(history_path(current_link))
    marked = run_module(snapshot, dict(options, name="validated"))
    assert marked["changed"] is True and marked["snapshot"] == {"id": "1.2.0"}
    assert run_module(snapshot, options)["changed"] is False
    run_module(snapshot_rollback, dict(options, to="1.0.0"))
    result = run_module(snapshot_rollback, dict(options, to="last_marked"))
    assert (result["previous"], result["current"]) == ("1.0.0", "1.2.0")
    assert link_target(current_link) == "1.2.0"
    with open(history_path(current_link)) as handle:
        assert [h["action"] for h in json.load(handle)] == ["mark", "switch", "switch"]


def test_snapshot_absent(tree):
    options, _current_link, _marker = tree
    result = run_module(snapshot, dict(options, state="absent", name="1.0.0"))
    assert result["changed"] is True and [s["id"] for s in result["snapshots"]] == ["1.1.0", "1.2.0"]
    refused = run_module(snapshot, dict(options, state="absent", name="1.2.0"), AnsibleFailJson)
    assert refused["msg"] == "release 1.2.0 is current: roll back to another one before deleting it"
    assert os.path.isdir(os.path.join(options["releases_dir"], "1.2.0"))


def test_snapshot_absent_needs_a_name(tree):
    options, _current_link, _marker = tree
    result = run_module(snapshot, dict(options, state="absent"), AnsibleFailJson)
    assert result["msg"] == "state is absent but all of the following are missing: name"


def test_snapshot_lvm_without_device_mapper():
    """Real ``dmsetup`` through the module's run_command: this kernel has no device-mapper driver."""
    result = run_module(snapshot, {"provider": "lvm", "vg": "mttr_no_such_vg", "lv": "data"}, AnsibleFailJson)
    assert result["msg"].startswith("device-mapper is not available in this kernel")
