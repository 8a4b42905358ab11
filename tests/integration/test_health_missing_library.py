"""A missing library on the host is a configuration error of the task, never a verdict on the service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ansible_runner
import pytest

from conftest import REPO

pytestmark = pytest.mark.integration


def test_postgres_probe_without_psycopg_fails_the_task_saying_what_to_install(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    (tmp_path / "run").mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "run"),
        playbook=str(REPO / "tests" / "integration" / "playbooks" / "health_without_psycopg.yml"),
        inventory="localhost ansible_connection=local ansible_python_interpreter=" + str(bare / "bin" / "python"),
        envvars={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"},
        quiet=True,
    )
    assert runner.status == "failed", runner.stdout.read()
    failed = [event for event in runner.events if event["event"] == "runner_on_failed"]
    assert len(failed) == 1
    result = failed[0]["event_data"]["res"]
    assert "psycopg" in result["msg"] and "orders db" in result["msg"]
    assert "probes" not in result, "no verdict on the service when the probe could not run"
