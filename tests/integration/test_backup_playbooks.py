"""Backup, restore and drill playbooks through ansible-runner against the real lab (PostgreSQL, moto)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from pathlib import Path

import psycopg
import pytest

from conftest import LAB_INVENTORY, REPO, VENV_BIN, run_playbook, task_result

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


def changed_hosts(runner) -> dict:
    """Hosts that reported a change, from the play recap."""
    return {host: count for host, count in (runner.stats or {}).get("changed", {}).items() if count}


def services(backed_up) -> dict:
    """What the services hold, read from them: databases, orders, both repositories."""
    state = backed_up.lab.cfg.state
    client = backed_up.lab.objstore.client()
    listing = client.list_objects_v2(Bucket=state["s3"]["bucket"], Prefix="lab/").get("Contents", [])
    return {
        "databases": databases(state),
        "orders": orders(state),
        "local": sorted(str(p.relative_to(backed_up.home)) for p in (backed_up.home / "backups").rglob("*")),
        "s3": sorted((item["Key"], item["ETag"]) for item in listing),
    }


def test_a_second_data_loss_is_restored_too(backed_up, tmp_path):
    """Break, restore, break again, restore again: the database's comment is no proof the data is there."""
    state = backed_up.lab.cfg.state
    for attempt in (1, 2):
        broke = backed_up.mttr("break", "data-loss")
        assert broke.returncode == 0, broke.stdout + broke.stderr
        check = run_playbook(
            tmp_path / f"check{attempt}", backed_up.home, PLAYBOOKS / "restore.yml", ident="check", cmdline="--check"
        )
        assert check.status == "successful", check.stdout.read()
        assert task_result(check, RESTORE_TASK)["changed"] is True
        assert orders(state) is None
        runner = run_playbook(tmp_path / f"restore{attempt}", backed_up.home, PLAYBOOKS / "restore.yml", ident="run")
        assert runner.status == "successful", runner.stdout.read()
        assert task_result(runner, RESTORE_TASK)["changed"] is True
        assert orders(state) == 1000

    again = run_playbook(tmp_path / "again", backed_up.home, PLAYBOOKS / "restore.yml", ident="again")
    assert again.status == "successful", again.stdout.read()
    assert changed_hosts(again) == {}, "a restore with nothing to restore reported a change"
    # the role pruned the older safety copy once the second restore validated
    assert len([name for name in databases(state) if name.startswith("orders__pre_restore_")]) == 1


def test_every_backup_playbook_passes_check_mode_and_changes_nothing(backed_up, tmp_path):
    for broken in (False, True):
        if broken:
            assert backed_up.mttr("break", "data-loss").returncode == 0
        before = services(backed_up)
        for playbook in ("backup.yml", "restore.yml", "drill.yml"):
            name = f"{playbook[:-4]}-{'broken' if broken else 'healthy'}"
            runner = run_playbook(tmp_path / name, backed_up.home, PLAYBOOKS / playbook, ident=name, cmdline="--check")
            output = runner.stdout.read()
            assert runner.status == "successful" and runner.rc == 0, output
            assert services(backed_up) == before, f"{playbook} --check changed something"
            if playbook == "drill.yml":
                assert "would restore" in output
            if playbook == "restore.yml":
                assert bool(changed_hosts(runner)) is broken, output
    for directory in tmp_path.iterdir():
        assert_no_secrets(directory, backed_up.lab.cfg.state)


def test_reruns_report_only_real_changes(backed_up, tmp_path):
    """A backup rerun takes a new backup (a change); a drill creates and drops its scratch database each run."""
    state = backed_up.lab.cfg.state
    rerun = run_playbook(tmp_path / "backup2", backed_up.home, PLAYBOOKS / "backup.yml", ident="backup2")
    assert rerun.status == "successful"
    first = {b["backup"]["id"] for b in task_result_list(tmp_path / "backup")}
    second = {b["backup"]["id"] for b in task_result_list(tmp_path / "backup2")}
    assert first.isdisjoint(second) and all(b["changed"] for b in task_result_list(tmp_path / "backup2"))
    before = databases(state)
    for attempt in (1, 2):
        drill = run_playbook(tmp_path / f"drill{attempt}", backed_up.home, PLAYBOOKS / "drill.yml", ident="drill")
        output = drill.stdout.read()
        assert drill.status == "successful", output
        assert "DRILL PASSED" in output
        assert task_result(drill, "Restore the latest backup into a scratch database")["changed"] is True
        # the restore into the scratch database and its drop (no_log: its result is censored)
        assert changed_hosts(drill) == {"pg1": 2}
        assert databases(state) == before
    restore = run_playbook(tmp_path / "restore", backed_up.home, PLAYBOOKS / "restore.yml", ident="restore")
    assert restore.status == "successful"
    assert changed_hosts(restore) == {}, "restoring the backup the database was taken from is no change"


def test_an_unknown_repository_or_backup_is_named_in_one_clear_line(backed_up, tmp_path):
    state = backed_up.lab.cfg.state
    nowhere = run_playbook(
        tmp_path / "nowhere", backed_up.home, PLAYBOOKS / "restore.yml", {"restore_repository": "nowhere"}, ident="x"
    )
    output = nowhere.stdout.read()
    assert nowhere.status == "failed"
    assert "restore_repository 'nowhere' is not configured: mttr_backup_repositories has local, s3" in output
    assert "dict object" not in output and "undefined" not in output.lower()
    drill = run_playbook(
        tmp_path / "drill", backed_up.home, PLAYBOOKS / "drill.yml", {"drill_repository": "nowhere"}, ident="x"
    )
    assert drill.status == "failed"
    assert "drill_repository 'nowhere' is not configured: mttr_backup_repositories has local, s3" in drill.stdout.read()

    taken = sorted(b["backup"]["id"] for b in task_result_list(tmp_path / "backup"))
    missing = "20200101T000000Z-postgres-abcdef"
    runner = run_playbook(
        tmp_path / "missing",
        backed_up.home,
        PLAYBOOKS / "restore.yml",
        {"restore_backup": missing, "restore_repository": "local"},
        ident="x",
    )
    output = runner.stdout.read()
    assert runner.status == "failed"
    assert f"backup {missing} does not exist in local repository" in output
    assert "incomplete" not in output
    local = [i for i in taken if (backed_up.home / "backups" / i).is_dir()]
    assert f"nearest: {local[0]} (newer)" in output
    assert orders(state) == 1000


def test_authenticated_backups_through_the_playbooks(fresh_lab, tmp_path):
    state = fresh_lab.lab.cfg.state
    key = secrets.token_hex(32)
    key_dir = tmp_path / "key"
    key_dir.mkdir(mode=0o700)
    key_file = key_dir / "backup.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    with_key = {"mttr_backup_key_file": str(key_file)}

    backup = run_playbook(tmp_path / "backup", fresh_lab.home, PLAYBOOKS / "backup.yml", with_key, ident="backup")
    assert backup.status == "successful", backup.stdout.read()
    taken = {b["backup"]["tags"]["repository"]: b["backup"] for b in task_result_list(tmp_path / "backup")}
    for manifest in taken.values():
        assert manifest["authentication"]["alg"] == "hmac-sha256"
    local_manifest = fresh_lab.home / "backups" / taken["local"]["id"] / "manifest.json"
    assert key not in local_manifest.read_text()

    lookup = run_playbook(
        tmp_path / "lookup",
        fresh_lab.home,
        REPO / "tests" / "integration" / "playbooks" / "backup_lookup.yml",
        with_key,
        ident="lookup",
    )
    assert lookup.status == "successful", lookup.stdout.read()

    # someone with write access to the repository swaps the dump and re-hashes the manifest
    fresh_lab.mttr("break", "data-loss")
    dump = fresh_lab.home / "backups" / taken["local"]["id"] / "orders.dump"
    forged = b"PGDMP forged"
    dump.write_bytes(forged)
    manifest = json.loads(local_manifest.read_text())
    manifest["artifacts"][0].update(size=len(forged), sha256=hashlib.sha256(forged).hexdigest())
    local_manifest.write_text(json.dumps(manifest))
    refused = run_playbook(
        tmp_path / "forged",
        fresh_lab.home,
        PLAYBOOKS / "restore.yml",
        {**with_key, "restore_repository": "local", "restore_backup": taken["local"]["id"]},
        ident="forged",
    )
    output = refused.stdout.read()
    assert refused.status == "failed"
    assert "HMAC does not verify" in output and "Nothing was swapped in" in output

    unkeyed = run_playbook(tmp_path / "unkeyed", fresh_lab.home, PLAYBOOKS / "restore.yml", ident="unkeyed")
    assert unkeyed.status == "failed"
    assert "no repository key was given: it cannot be authenticated" in unkeyed.stdout.read()
    assert orders(state) is None

    restored = run_playbook(tmp_path / "restore", fresh_lab.home, PLAYBOOKS / "restore.yml", with_key, ident="restore")
    assert restored.status == "successful", restored.stdout.read()
    assert task_result(restored, RESTORE_TASK)["backup_id"] == taken["s3"]["id"]
    assert orders(state) == 1000

    # the key from MTTR_BACKUP_KEY instead of a file. Not through ansible-runner: it writes its whole
    # environment into artifacts/<ident>/command, so a key given that way would land there.
    env = dict(os.environ, MTTR_HOME=str(fresh_lab.home), MTTR_BACKUP_KEY=key, ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    drill = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(LAB_INVENTORY), str(PLAYBOOKS / "drill.yml"), "-v"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "DRILL PASSED" in drill.stdout
    assert key not in drill.stdout + drill.stderr

    for directory in ("backup", "lookup", "forged", "unkeyed", "restore"):
        for path in (tmp_path / directory).rglob("*"):
            if path.is_file():
                assert key not in path.read_text(errors="replace"), f"the repository key leaked into {path}"
        assert_no_secrets(tmp_path / directory, state)


def task_result_list(private_data_dir: Path) -> list[dict]:
    """Per-item results of the looped backup task, read from the runner's job events."""
    items = []
    for path in sorted((private_data_dir / "artifacts").glob("*/job_events/*.json")):
        event = json.loads(path.read_text())
        if event.get("event") == "runner_item_on_ok":
            items.append(event["event_data"]["res"])
    return items
