"""The restart role against the lab's app-crash, through ansible-runner: the app's own stop and start
commands from the inventory, proven from the service (HAProxy, the pid file, the lab's own tracking)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from conftest import REPO, run_playbook, task_result

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "restart.yml"
PLAN = "Say what the restart will do"
START = "Start the component"
WAIT = "Wait until the component's probes are healthy"


def health(url):
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return None, None


def changed_tasks(runner):
    return [
        e["event_data"]["task"]
        for e in runner.events
        if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")
    ]


def test_crashed_app_is_restarted_by_its_own_commands(fresh_lab, tmp_path):
    lab = fresh_lab.lab
    public = lab.cfg.state["app"]["public_url"]
    fresh_lab.mttr("break", "app-crash")
    crashed = lab.app.tracked.stale()
    assert crashed and crashed > 0, "app-crash leaves the dead app's pid file behind"
    assert health(public)[0] != 200

    check = run_playbook(tmp_path / "check", fresh_lab.home, PLAYBOOK, ident="check", cmdline="--check")
    check_output = check.stdout.read()
    assert check.status == "successful", check_output
    plan = task_result(check, PLAN)
    assert plan["changed"] is True and plan["msg"].startswith("would run "), plan
    assert "app.py --daemon" in plan["msg"] and "mttr.lab.process stop" in plan["msg"]
    assert lab.app.tracked.pid() is None and health(public)[0] != 200, "check mode started the app"

    runner = run_playbook(tmp_path / "run", fresh_lab.home, PLAYBOOK, ident="run")
    output = runner.stdout.read()
    assert runner.status == "successful" and runner.rc == 0, output
    assert "[WARNING]" not in output, output
    assert task_result(runner, START)["changed"] is True
    assert task_result(runner, WAIT)["status"] == "healthy"
    # From the service: HAProxy routes to a live app again, and the pid file names a new, live app
    # process that the lab itself recognises (so 'mttr lab status' and 'mttr lab down' see it).
    status, body = health(public)
    assert status == 200 and body["status"] == "ok", body
    pid = lab.app.tracked.pid()
    assert pid and pid != crashed
    assert os.path.exists(f"/proc/{pid}") and lab.app.tracked.stale() is None
    assert fresh_lab.mttr("status").returncode == 0

    again = run_playbook(tmp_path / "again", fresh_lab.home, PLAYBOOK, ident="again")
    assert again.status == "successful", again.stdout.read()
    assert changed_tasks(again) == []
    assert lab.app.tracked.pid() == pid, "a healthy app was restarted"

    forced = run_playbook(tmp_path / "forced", fresh_lab.home, PLAYBOOK, {"restart_force": True}, ident="forced")
    assert forced.status == "successful", forced.stdout.read()
    new = lab.app.tracked.pid()
    assert new and new != pid and health(public)[0] == 200

    down = fresh_lab.mttr("down")
    assert f"Stopped the app (pid {new})" in down.stdout, down.stdout


def test_restart_that_does_not_come_up_fails_on_its_probes(fresh_lab, tmp_path):
    fresh_lab.mttr("break", "app-crash")
    runner = run_playbook(
        tmp_path / "nostart",
        fresh_lab.home,
        PLAYBOOK,
        {"restart_start_command": ["/bin/true"], "restart_deadline": 2},
        ident="nostart",
    )
    output = runner.stdout.read()
    assert runner.status == "failed", output
    waited = task_result(runner, WAIT)
    assert waited["status"] == "down" and "app1 health via lb" in waited["msg"], waited


def test_nothing_to_restart_with_is_a_clear_error(fresh_lab, tmp_path):
    runner = run_playbook(
        tmp_path / "none", fresh_lab.home, PLAYBOOK, {"restart_start_command": [], "restart_unit": ""}, ident="none"
    )
    output = runner.stdout.read()
    assert runner.status == "failed"
    assert "restart needs a way to restart app1" in output
