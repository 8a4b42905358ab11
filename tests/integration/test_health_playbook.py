"""playbooks/health.yml through ansible-runner against the real lab, healthy and broken."""

from __future__ import annotations

import pytest

from conftest import REPO, run_playbook, task_result

pytestmark = pytest.mark.integration

HEALTH = REPO / "playbooks" / "health.yml"
PROBE_TASK = "Probe all targeted services at once from the controller"


def probe_status(result) -> dict[str, str]:
    return {probe["name"]: probe["status"] for probe in result["probes"]}


def test_healthy_lab_reports_every_probe_healthy(module_lab, tmp_path):
    runner = run_playbook(tmp_path, module_lab.home, HEALTH, ident="healthy")
    assert runner.status == "successful" and runner.rc == 0, runner.stdout.read()
    result = task_result(runner, PROBE_TASK)
    assert result["status"] == "healthy", result["failing"]
    assert result["changed"] is False
    assert set(probe_status(result)) == {
        "pg1 postgres",
        "pg2 postgres",
        "lb1 write endpoint",
        "lb1 web frontend",
        "app1 health via lb",
        "app1 health direct",
        "s3 s3 endpoint",
    }
    details = {probe["name"]: probe["details"] for probe in result["probes"]}
    assert details["pg1 postgres"]["role"] == "primary"
    assert details["pg2 postgres"]["role"] == "standby"
    output = runner.stdout.read()
    assert "overall: healthy (7 healthy" in output
    assert module_lab.lab.cfg.state["db"]["superuser_password"] not in output


def test_health_in_check_mode_probes_too(module_lab, tmp_path):
    runner = run_playbook(tmp_path, module_lab.home, HEALTH, ident="check", cmdline="--check")
    assert runner.status == "successful", runner.stdout.read()
    assert task_result(runner, PROBE_TASK)["status"] == "healthy"


def test_primary_down_is_reported_down(fresh_lab, tmp_path):
    fresh_lab.mttr("break", "primary-down")
    runner = run_playbook(tmp_path, fresh_lab.home, HEALTH, ident="primary-down")
    assert runner.status == "successful", runner.stdout.read()
    result = task_result(runner, PROBE_TASK)
    status = probe_status(result)
    assert result["status"] == "down"
    assert status["pg1 postgres"] == "down"
    assert status["pg2 postgres"] == "healthy"
    # the app's /health checks its database through HAProxy: it is down with the primary
    assert status["app1 health direct"] == "down"
    assert status["app1 health via lb"] == "down"
    failing = " ".join(result["failing"])
    assert "pg1 postgres: down" in failing and "refused" in failing.lower()

    strict = run_playbook(tmp_path, fresh_lab.home, HEALTH, {"health_fail_on": "down"}, ident="strict")
    assert strict.status == "failed"
    assert "pg1 postgres: down" in strict.stdout.read()


def test_app_crash_is_reported_down(fresh_lab, tmp_path):
    fresh_lab.mttr("break", "app-crash")
    runner = run_playbook(tmp_path, fresh_lab.home, HEALTH, ident="app-crash")
    result = task_result(runner, PROBE_TASK)
    status = probe_status(result)
    assert status["app1 health direct"] == "down"
    assert status["app1 health via lb"] == "down"
    assert status["pg1 postgres"] == status["pg2 postgres"] == "healthy"
    assert status["s3 s3 endpoint"] == "healthy"
    assert result["status"] == "down"
