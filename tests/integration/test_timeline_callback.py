"""The timeline callback through ansible-runner: every task lands on the incident, secrets never do."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import ansible_runner
import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from conftest import REPO

pytestmark = pytest.mark.integration


def test_timeline_records_tasks_and_no_secrets(tmp_path):
    store_path = tmp_path / "store" / "incidents.sqlite"
    store = IncidentStore(str(store_path))
    record, _changed = store.open(["orders"], severity="SEV2", summary="timeline test")
    secret = "S3cr3t-" + secrets.token_hex(8)
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path),
        playbook=str(REPO / "tests" / "integration" / "playbooks" / "timeline.yml"),
        extravars={"timeline_secret": secret, "mttr_incident_id": record["id"]},
        envvars={
            "ANSIBLE_CALLBACKS_ENABLED": "mttr.recovery.timeline",
            "MTTR_INCIDENT_STORE": str(store_path),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        },
        quiet=True,
        ident="timeline",
    )
    assert runner.status == "successful", runner.stdout.read()
    entries = store.timeline(record["id"])
    tasks = {e["action"]: e for e in entries if e["kind"] == "task"}
    assert tasks["Probe something"]["result"] == "ok"
    assert tasks["Use a secret without showing it"]["result"] == "changed"
    assert tasks["Use a secret without showing it"]["message"] == "output hidden by no_log"
    assert tasks["Skip this one"]["result"] == "skipped"
    assert tasks["Fail and carry on"]["result"] == "failed"
    assert tasks["Fail and carry on"]["message"]  # the failure's message is recorded
    assert tasks["Recover from the failure"]["result"] == "ok"
    assert all(tasks[name]["host"] == "localhost" for name in tasks)
    assert all(e["duration"] is not None and e["duration"] >= 0 for e in tasks.values())
    assert "********" in tasks["Say something that looks like a credential"]["message"]
    playbook = [e for e in entries if e["kind"] == "playbook"]
    assert len(playbook) == 2 and "succeeded" in playbook[-1]["message"]
    # the secret is nowhere in the store's bytes (database and its WAL)
    for path in store_path.parent.iterdir():
        assert secret.encode() not in path.read_bytes(), f"secret found in {path}"


def test_without_an_incident_nothing_is_recorded(tmp_path):
    store_path = tmp_path / "store" / "incidents.sqlite"
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path),
        playbook=str(REPO / "tests" / "integration" / "playbooks" / "timeline.yml"),
        extravars={"timeline_secret": "x"},
        envvars={
            "ANSIBLE_CALLBACKS_ENABLED": "mttr.recovery.timeline",
            "MTTR_INCIDENT_STORE": str(store_path),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        },
        quiet=True,
        ident="no-incident",
    )
    assert runner.status == "successful"
    assert not store_path.exists()
