"""inventories/lab through ansible-runner against the running lab, and the collection's docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_playbook

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_lab_inventory_reaches_every_service(module_lab, tmp_path):
    result = run_playbook(tmp_path, module_lab.home, REPO / "tests" / "integration" / "playbooks" / "lab_inventory.yml")
    assert result.status == "successful" and result.rc == 0, result.stdout.read()
    ok_hosts = {event["event_data"]["host"] for event in result.events if event["event"] == "runner_on_ok"}
    assert ok_hosts == {"pg1", "pg2", "lb1", "app1", "s3"}


def test_lab_inventory_without_a_lab_fails_clearly(tmp_path):
    home = tmp_path / "nolab"
    home.mkdir()
    result = run_playbook(tmp_path, home, REPO / "tests" / "integration" / "playbooks" / "lab_inventory.yml")
    assert result.status == "failed"
    assert "mttr lab up" in result.stdout.read()


def test_ansible_doc_lists_the_collection():
    listing = subprocess.run(
        [BIN / "ansible-doc", "-t", "lookup", "-l", "mttr.recovery"], capture_output=True, text=True, check=False
    )
    assert listing.returncode == 0, listing.stderr
    assert "mttr.recovery.lab" in listing.stdout
    modules = subprocess.run([BIN / "ansible-doc", "-l", "mttr.recovery"], capture_output=True, text=True, check=False)
    assert modules.returncode == 0, modules.stderr
    doc = subprocess.run(
        [BIN / "ansible-doc", "-t", "lookup", "mttr.recovery.lab"], capture_output=True, text=True, check=False
    )
    assert doc.returncode == 0 and "MTTR_HOME" in doc.stdout, doc.stderr
