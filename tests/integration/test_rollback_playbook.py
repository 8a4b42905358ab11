"""playbooks/rollback.yml against the lab's bad-release, through ansible-runner."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from conftest import REPO, run_playbook, task_result

pytestmark = pytest.mark.integration

ROLLBACK = REPO / "playbooks" / "rollback.yml"
TASK = "Roll back to the chosen release or snapshot"


def version(url):
    with urllib.request.urlopen(url + "/version", timeout=5) as response:
        return json.load(response)["version"]


def test_bad_release_is_rolled_back_and_validated(fresh_lab, tmp_path):
    lab = fresh_lab.lab
    fresh_lab.mttr("break", "bad-release")
    assert lab.app.current_version() == "1.0.1"

    check = run_playbook(tmp_path / "check", fresh_lab.home, ROLLBACK, ident="check", cmdline="--check --diff")
    check_output = check.stdout.read()
    assert check.status == "successful", check_output
    assert "[WARNING]" not in check_output, check_output
    planned = task_result(check, TASK)
    assert planned["changed"] is True and planned["current"] == "1.0.0"
    assert lab.app.current_version() == "1.0.1", "check mode switched the release"

    runner = run_playbook(tmp_path / "run", fresh_lab.home, ROLLBACK, ident="run")
    output = runner.stdout.read()
    assert runner.status == "successful", output
    # The role once merged its module options with '<<:' and then set 'to:' again.
    assert "duplicate mapping key" not in output and "[WARNING]" not in output, output
    result = task_result(runner, TASK)
    assert result["previous"] == "1.0.1" and result["current"] == "1.0.0" and result["restarted"] is True
    assert os.readlink(lab.app.current) == "releases/1.0.0"
    assert version(lab.cfg.state["app"]["public_url"]) == "1.0.0"
    assert (lab.app.releases / "1.0.1").is_dir(), "the replaced release must be kept"

    again = run_playbook(tmp_path / "again", fresh_lab.home, ROLLBACK, {"rollback_to": "1.0.0"}, ident="again")
    assert again.status == "successful"
    assert task_result(again, TASK)["changed"] is False


def test_rollback_to_a_bad_release_is_undone(fresh_lab, tmp_path):
    lab = fresh_lab.lab
    fresh_lab.mttr("break", "bad-release")
    fresh_lab.mttr("restart", "app")
    lab.app.switch("1.0.0")
    fresh_lab.mttr("restart", "app")
    runner = run_playbook(
        tmp_path / "bad",
        fresh_lab.home,
        ROLLBACK,
        {"rollback_to": "1.0.1", "snapshot_rollback_validate_deadline": 2},
        ident="bad",
    )
    output = runner.stdout.read()
    assert runner.status == "failed"
    assert "It was undone" in output and "Escalate to a human" in output
    assert "duplicate mapping key" not in output, output
    assert lab.app.current_version() == "1.0.0"
    assert version(lab.cfg.state["app"]["url"]) == "1.0.0"


def test_unknown_release_is_a_clear_error(fresh_lab, tmp_path):
    runner = run_playbook(tmp_path / "unknown", fresh_lab.home, ROLLBACK, {"rollback_to": "9.9.9"}, ident="unknown")
    assert runner.status == "failed"
    assert "release '9.9.9' not found" in runner.stdout.read()
    assert fresh_lab.lab.app.current_version() == "1.0.0"


def test_rollback_whose_restart_cannot_run_is_switched_back_and_escalated(fresh_lab, tmp_path):
    """The link was switched but the restart could not run: changed says so, the undo runs, a person is told."""
    lab = fresh_lab.lab
    fresh_lab.mttr("break", "bad-release")
    runner = run_playbook(
        tmp_path / "norestart",
        fresh_lab.home,
        ROLLBACK,
        {"app_restart_command": ["/nonexistent/restart-app"]},
        ident="norestart",
    )
    output = runner.stdout.read()
    assert runner.status == "failed"
    result = task_result(runner, TASK)
    assert result["changed"] is True and result["previous"] == "1.0.1" and result["current"] == "1.0.0"
    assert "cannot run the restart command /nonexistent/restart-app" in result["msg"]
    assert "Escalate to a human" in output and "Nothing else was changed" not in output
    assert "switched back" in output
    # what runs is what the link says: the release that was running before the attempt
    assert os.readlink(lab.app.current) == "releases/1.0.1"
    assert version(lab.cfg.state["app"]["url"]) == "1.0.1"
