"""Backup, restore and drill playbooks through ansible-runner against the real lab (PostgreSQL, moto)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, run_playbook, task_result

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "playbooks"
RESTORE_TASK = "Restore the backup into a staging place and swap it in"


def db(state, dbname="postgres"):
    return psycopg.connect(
        host="127.0.0.1",
        port=state["ports"]["pg1"],
        dbname=dbname,
        user=state["db"]["superuser"],
        password=state["db"]["superuser_password"],
        autocommit=True,
        connect_timeout=3,
    )


def databases(state) -> list[str]:
    with db(state) as conn:
        return sorted(row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate"))


def orders(state):
    """Row count of orders, or None when the table is gone."""
    with db(state, "orders") as conn:
        if not conn.execute("SELECT to_regclass('public.orders')").fetchone()[0]:
            return None
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]


def secrets_of(state) -> list[str]:
    return [state["db"]["superuser_password"], state["db"]["app_password"], state["s3"]["secret_key"]]


def assert_no_secrets(private_data_dir: Path, state) -> None:
    for path in private_data_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for secret in secrets_of(state):
                assert secret not in text, f"a secret leaked into {path}"


@pytest.fixture
def backed_up(fresh_lab, tmp_path):
    runner = run_playbook(tmp_path / "backup", fresh_lab.home, PLAYBOOKS / "backup.yml", ident="backup")
    assert runner.status == "successful", runner.stdout.read()
    return fresh_lab


def test_backup_then_data_loss_then_restore(backed_up, tmp_path):
    state = backed_up.lab.cfg.state
    backups = task_result_list(tmp_path / "backup")
    assert len(backups) == 2 and len({b["backup"]["id"] for b in backups}) == 2
    assert {b["backup"]["kind"] for b in backups} == {"postgres"}
    client = backed_up.lab.objstore.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=state["s3"]["bucket"], Prefix="lab/")["Contents"]]
    assert any(k.endswith("manifest.json") for k in keys) and any(k.endswith("orders.dump") for k in keys)
    assert list((backed_up.home / "backups").glob("*/manifest.json"))

    backed_up.mttr("break", "data-loss")
    assert orders(state) is None

    before = databases(state)
    check = run_playbook(
        tmp_path / "check", backed_up.home, PLAYBOOKS / "restore.yml", ident="check", cmdline="--check --diff"
    )
    assert check.status == "successful", check.stdout.read()
    planned = task_result(check, RESTORE_TASK)
    assert planned["changed"] is True and "would restore" in planned["msg"]
    assert orders(state) is None and databases(state) == before, "check mode changed something"

    runner = run_playbook(tmp_path / "restore", backed_up.home, PLAYBOOKS / "restore.yml", ident="restore")
    assert runner.status == "successful", runner.stdout.read()
    result = task_result(runner, RESTORE_TASK)
    assert result["changed"] is True and result["verification"] == "sha256" and result["bytes"] > 0
    assert orders(state) == 1000
    assert result["safety_copy"] in databases(state)
    with db(state, result["safety_copy"]) as conn:
        assert conn.execute("SELECT to_regclass('public.orders')").fetchone()[0] is None
    assert not [name for name in databases(state) if "__mttr_staging_" in name]

    again = run_playbook(tmp_path / "again", backed_up.home, PLAYBOOKS / "restore.yml", ident="again")
    assert again.status == "successful"
    assert task_result(again, RESTORE_TASK)["changed"] is False

    for directory in ("backup", "check", "restore", "again"):
        assert_no_secrets(tmp_path / directory, state)


def test_restore_from_the_local_repository_and_drill(backed_up, tmp_path):
    state = backed_up.lab.cfg.state
    taken = {b["backup"]["tags"]["repository"]: b["backup"]["id"] for b in task_result_list(tmp_path / "backup")}
    lookup = run_playbook(
        tmp_path / "lookup",
        backed_up.home,
        REPO / "tests" / "integration" / "playbooks" / "backup_lookup.yml",
        ident="lookup",
    )
    assert lookup.status == "successful", lookup.stdout.read()
    assert f"local={taken['local']} s3={taken['s3']}" in lookup.stdout.read()

    backed_up.mttr("break", "data-loss")
    runner = run_playbook(
        tmp_path / "restore",
        backed_up.home,
        PLAYBOOKS / "restore.yml",
        {"restore_repository": "local"},
        ident="restore-local",
    )
    assert runner.status == "successful", runner.stdout.read()
    assert orders(state) == 1000

    before = databases(state)
    drill = run_playbook(tmp_path / "drill", backed_up.home, PLAYBOOKS / "drill.yml", ident="drill")
    assert drill.status == "successful", drill.stdout.read()
    assert "DRILL PASSED" in drill.stdout.read()
    assert databases(state) == before, "the drill left a database behind"
    assert_no_secrets(tmp_path / "drill", state)


def test_restore_that_fails_validation_is_rolled_back(backed_up, tmp_path):
    state = backed_up.lab.cfg.state
    with db(state, "orders") as conn:
        conn.execute("DELETE FROM orders WHERE id > 500")
    # Credentials come from the inventory, as a user would write them: never literally in extra vars.
    impossible = {
        "name": "impossible count",
        "host": "127.0.0.1",
        "port": "{{ pg_port }}",
        "dbname": "orders",
        "user": "{{ pg_user }}",
        "password": "{{ pg_password }}",
        "query": "SELECT count(*) FROM orders",
        "expected": 10**6,
        "compare": "ge",
    }
    runner = run_playbook(
        tmp_path / "fail",
        backed_up.home,
        PLAYBOOKS / "restore.yml",
        {"backup_restore_integrity_checks": [impossible], "backup_restore_validate_deadline": 1},
        ident="fail",
    )
    output = runner.stdout.read()
    assert runner.status == "failed"
    assert "It was rolled back" in output and "Escalate to a human" in output
    assert orders(state) == 500, "the pre-restore state was not put back"
    assert any(name.startswith("orders__undone_") for name in databases(state))
    assert_no_secrets(tmp_path / "fail", state)


def test_latest_before_with_no_older_backup_is_refused(backed_up, tmp_path):
    state = backed_up.lab.cfg.state
    runner = run_playbook(
        tmp_path / "old",
        backed_up.home,
        PLAYBOOKS / "restore.yml",
        {"restore_latest_before": "2001-01-01T00:00:00Z"},
        ident="old",
    )
    assert runner.status == "failed"
    assert "no complete postgres backup" in runner.stdout.read()
    assert orders(state) == 1000


def task_result_list(private_data_dir: Path) -> list[dict]:
    """Per-item results of the looped backup task, read from the runner's job events."""
    items = []
    for path in sorted((private_data_dir / "artifacts").glob("*/job_events/*.json")):
        event = json.loads(path.read_text())
        if event.get("event") == "runner_item_on_ok":
            items.append(event["event_data"]["res"])
    return items
