"""inventories/lab through ansible-runner against the running lab, and the collection's docs."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import run_playbook, task_result

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_lab_inventory_reaches_every_service(module_lab, tmp_path):
    result = run_playbook(tmp_path, module_lab.home, REPO / "tests" / "integration" / "playbooks" / "lab_inventory.yml")
    assert result.status == "successful" and result.rc == 0, result.stdout.read()
    ok_hosts = {event["event_data"]["host"] for event in result.events if event["event"] == "runner_on_ok"}
    assert ok_hosts == {"pg1", "pg2", "lb1", "app1", "s3"}


def python_without_mttr_beside_it(root: Path) -> Path:
    """A Python that imports this project's packages (ansible, mttr, psycopg) but has no ``mttr``
    script beside it, as a system or pipx ansible-playbook would be; returns its ansible-playbook."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    own_site = sysconfig.get_paths()["purelib"]
    other_site = subprocess.run(
        [root / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # addsitedir, not a bare path: the editable mttr install is itself a .pth file there.
    (Path(other_site) / "project.pth").write_text(f"import site; site.addsitedir({own_site!r})\n")
    playbook = root / "bin" / "ansible-playbook"
    script = (BIN / "ansible-playbook").read_text().split("\n", 1)[1]
    playbook.write_text(f"#!{root}/bin/python\n{script}")
    playbook.chmod(0o755)
    assert not (root / "bin" / "mttr").exists()
    return playbook


def test_lab_commands_work_whatever_python_runs_ansible_playbook(fresh_lab, tmp_path):
    playbook = python_without_mttr_beside_it(tmp_path / "other-python")
    assert fresh_lab.mttr("break", "app-crash").returncode == 0
    result = run_playbook(
        tmp_path / "run",
        fresh_lab.home,
        REPO / "tests" / "integration" / "playbooks" / "lab_commands.yml",
        envvars={"PATH": f"{playbook.parent}:{os.environ['PATH']}"},
    )
    output = result.stdout.read()
    assert result.status == "successful" and result.rc == 0, output
    assert task_result(result, "Name the Python running ansible-playbook")["msg"] == str(playbook.parent / "python")
    ran = {event["event_data"]["task"] for event in result.events if event["event"] == "runner_on_ok"}
    assert {"Run pg_start_command", "Run app_restart_command"} <= ran, output
    assert all(row["state"] == "up" for row in fresh_lab.lab.status())


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
