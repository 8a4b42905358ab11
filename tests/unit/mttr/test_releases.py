"""Release layout of the lab app: versions, deploys and the atomic ``current`` switch."""

import json
import os

import pytest

from mttr.lab import config
from mttr.lab.process import LabError
from mttr.lab.services import App


@pytest.fixture
def app(tmp_path):
    return App(config.create(tmp_path, 30000, "/usr/bin/python3"))


def test_first_deploy_is_1_0_0_and_becomes_current(app):
    release = app.deploy(app.next_version(), note="first")
    assert release.name == "1.0.0"
    assert app.current_version() == "1.0.0"
    assert os.readlink(app.current) == "releases/1.0.0"
    assert json.loads((release / "release.json").read_text())["note"] == "first"
    shared = json.loads((app.root / "shared" / "config.json").read_text())
    assert shared["db"]["port"] == 30010
    assert (app.root / "shared" / "config.json").stat().st_mode & 0o777 == 0o600


def test_versions_sort_numerically_and_next_bumps_patch(app):
    for version in ("1.0.9", "1.0.10", "1.0.2"):
        app.deploy(version)
    assert app.versions() == ["1.0.2", "1.0.9", "1.0.10"]
    assert app.next_version() == "1.0.11"
    assert app.current_version() == "1.0.2"


def test_switch_replaces_the_link_in_one_step(app):
    app.deploy("1.0.0")
    app.deploy("1.0.1")
    inode_before = os.lstat(app.current).st_ino
    app.switch("1.0.0")
    assert app.current_version() == "1.0.0"
    assert os.lstat(app.current).st_ino != inode_before
    assert not (app.root / ".current.tmp").exists()


def test_deploying_an_existing_version_is_refused(app):
    app.deploy("1.0.0")
    with pytest.raises(LabError, match="already exists"):
        app.deploy("1.0.0")
