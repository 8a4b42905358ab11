"""The postgres backup kind against a real PostgreSQL 15 server: pg_dump, verified restore by rename, roll back."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import restore, roll_back, take_backup
from ansible_collections.mttr.recovery.plugins.module_utils.backup_postgres import STAGING_INFIX, PostgresTarget
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import BackupError, LocalRepository
from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.backup_fixtures import (
    PG_BIN,
    MotoServer,
    PostgresServer,
    flip_byte,
    remove_raw,
    store_backup,
    truncate,
)
from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.local_processes import run_process

ROWS = 250


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def repo(request, tmp_path):
    if request.param == "local":
        return LocalRepository(tmp_path / "repo")
    return request.getfixturevalue("moto").repository()


@pytest.fixture
def shop(pg):
    """A database of its own: orders (ROWS rows) and customers."""
    name = f"shop_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    with pg.connect(name) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
        conn.execute("INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, %s) g", (ROWS,))
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO customers VALUES (1, 'ada'), (2, 'grace')")
        conn.execute("CREATE INDEX orders_item ON orders (item)")
    return name


def rows(pg, database, table="orders"):
    """Rows in ``table``, or None when the table does not exist."""
    if pg.query(database, "SELECT to_regclass(%s)", (table,))[0][0] is None:
        return None
    return pg.query(database, f"SELECT count(*) FROM {table}")[0][0]


def staging_databases(pg, database):
    return [name for name in pg.databases() if name.startswith(database + STAGING_INFIX)]


def comment(pg, database):
    return pg.query(
        "postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (database,)
    )[0][0]


def backup_of(repo, pg, database):
    return take_backup(repo, "postgres", run=run_process, target=pg.target(database))["backup"]


def test_backup_restore_and_roll_back(pg, repo, shop, tmp_path):
    target = pg.target(shop)
    result = take_backup(repo, "postgres", run=run_process, target=target, tags={"why": "test"})
    manifest = result["backup"]
    assert result["changed"] is True
    artifact = manifest["artifacts"][0]
    assert artifact["name"] == f"{shop}.dump"
    assert artifact["format"] == "custom"
    assert manifest["source"] == {"name": shop, "host": manifest["source"]["host"], "database": shop}
    assert "15." in manifest["tools"]["pg_dump"]
    assert repo.verify(manifest["id"]) == manifest

    pg.query(shop, "DROP TABLE orders")
    databases = pg.databases()

    check = restore(repo, "postgres", check_mode=True, run=run_process, target=target)
    assert check["changed"] is True
    assert pg.databases() == databases
    assert rows(pg, shop) is None

    work = tmp_path / "work"
    work.mkdir()
    restored = restore(repo, "postgres", run=run_process, target=target, tmp_dir=str(work))
    assert restored["changed"] is True
    assert restored["verification"] == "sha256"
    assert restored["bytes"] == artifact["size"]
    assert restored["diff"]["before"] == {"target": f"database {shop}", "exists": True, "backup_id": None}
    assert rows(pg, shop) == ROWS
    assert rows(pg, shop, "customers") == 2
    safety = restored["safety_copy"]
    assert safety in pg.databases()
    assert rows(pg, safety) is None  # the state just before the restore: orders dropped
    assert rows(pg, safety, "customers") == 2
    assert staging_databases(pg, shop) == []
    assert list(work.iterdir()) == []  # the dump's work directory is gone
    assert comment(pg, shop) == f"mttr: backup_id={manifest['id']} safety_copy={safety}"
    assert target.state() == {
        "backup_id": manifest["id"],
        "safety_copy": safety,
        "rolled_back": False,
        "undone_copy": None,
    }

    again = restore(repo, "postgres", run=run_process, target=target)
    assert again["changed"] is False
    assert "already holds backup" in again["msg"]
    assert restore(repo, "postgres", check_mode=True, run=run_process, target=target)["changed"] is False

    assert roll_back("postgres", check_mode=True, target=target)["changed"] is True
    assert rows(pg, shop) == ROWS
    rolled = roll_back("postgres", target=target)
    assert rolled["changed"] is True
    assert rows(pg, shop) is None  # back to the pre-restore state
    undone = rolled["undone_copy"]
    assert rows(pg, undone) == ROWS
    assert safety not in pg.databases()
    assert target.state()["rolled_back"] is True
    assert roll_back("postgres", target=target)["changed"] is False
    assert rows(pg, shop) is None

    # a rolled back restore can be done again
    redo = restore(repo, "postgres", run=run_process, target=target)
    assert redo["changed"] is True
    assert rows(pg, shop) == ROWS
    assert rows(pg, redo["safety_copy"]) is None


def test_forced_restores_in_quick_succession(pg, shop, tmp_path):
    repo = LocalRepository(tmp_path / "repo")
    target = pg.target(shop)
    backup_of(repo, pg, shop)
    first = restore(repo, "postgres", run=run_process, target=target)
    pg.query(shop, "DELETE FROM orders WHERE id > 10")
    second = restore(repo, "postgres", run=run_process, target=target, force=True)
    assert second["changed"] is True
    assert second["safety_copy"] != first["safety_copy"]
    assert rows(pg, shop) == ROWS
    assert rows(pg, second["safety_copy"]) == 10
    assert rows(pg, first["safety_copy"]) == ROWS
    rolled = roll_back("postgres", target=target)
    assert rows(pg, shop) == 10
    assert rows(pg, rolled["undone_copy"]) == ROWS


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_dump_is_refused_and_the_target_untouched(pg, repo, shop, damage):
    target = pg.target(shop)
    manifest = backup_of(repo, pg, shop)
    if damage == "flip":
        flip_byte(repo, manifest["id"], f"{shop}.dump")
        message = "has sha256 .*the backup is corrupt"
    else:
        truncate(repo, manifest["id"], f"{shop}.dump")
        message = "the backup is truncated or corrupt"
    pg.query(shop, "DELETE FROM orders WHERE id > 100")
    databases = pg.databases()
    with pytest.raises(BackupError, match=message):
        restore(repo, "postgres", run=run_process, target=target)
    assert rows(pg, shop) == 100
    assert pg.databases() == databases
    assert staging_databases(pg, shop) == []
    assert target.state() == {}


def test_dump_that_pg_restore_rejects_is_refused(pg, shop, tmp_path):
    """A correct manifest over bytes that are no dump: pg_restore fails in staging, the target is untouched."""
    repo = LocalRepository(tmp_path / "repo")
    target = pg.target(shop)
    manifest = store_backup(repo, "postgres", {f"{shop}.dump": b"PGDMP" + b"\0garbage" * 64}, source=shop)
    databases = pg.databases()
    with pytest.raises(BackupError, match=f"pg_restore into {shop}{STAGING_INFIX}.* failed: .*the target is untouched"):
        restore(repo, "postgres", run=run_process, target=target, backup=manifest["id"])
    assert rows(pg, shop) == ROWS
    assert pg.databases() == databases
    assert staging_databases(pg, shop) == []


def test_missing_dump_is_refused(pg, repo, shop):
    target = pg.target(shop)
    manifest = backup_of(repo, pg, shop)
    remove_raw(repo, manifest["id"], f"{shop}.dump")
    with pytest.raises(BackupError, match=f"artifact {shop}.dump is missing"):
        restore(repo, "postgres", run=run_process, target=target)
    assert rows(pg, shop) == ROWS
    assert staging_databases(pg, shop) == []


def test_connected_clients_are_terminated_and_the_swap_succeeds(pg, shop, tmp_path):
    repo = LocalRepository(tmp_path / "repo")
    target = pg.target(shop)
    backup_of(repo, pg, shop)
    pg.query(shop, "DELETE FROM orders")
    idle = pg.connect(shop)
    idle.execute("SELECT count(*) FROM orders").fetchone()
    busy = pg.connect(shop)
    busy.autocommit = False
    busy.execute("SELECT * FROM orders FOR UPDATE").fetchall()  # idle in transaction, holding locks
    try:
        result = restore(repo, "postgres", run=run_process, target=target)
        assert result["changed"] is True
        assert rows(pg, shop) == ROWS
        assert rows(pg, result["safety_copy"]) == 0
        for client in (idle, busy):
            with pytest.raises(psycopg.OperationalError):
                client.execute("SELECT 1").fetchone()
    finally:
        idle.close()
        busy.close()


def test_recover_drops_leftover_staging_databases(pg, shop, tmp_path):
    target = pg.target(shop)
    leftover = f"{shop}{STAGING_INFIX}abc123"
    pg.create_database(leftover)
    session = pg.connect(leftover)  # a session left on it does not stop the clean-up
    try:
        assert target.recover() == [f"dropped the leftover staging database {leftover}"]
        assert leftover not in pg.databases()
        assert target.recover() == []
    finally:
        session.close()
    assert pg.target("other_db").recover() == []

    repo = LocalRepository(tmp_path / "repo")
    backup_of(repo, pg, shop)
    pg.create_database(leftover)
    result = restore(repo, "postgres", run=run_process, target=target)
    assert result["recovered"] == [f"dropped the leftover staging database {leftover}"]
    assert staging_databases(pg, shop) == []
    assert rows(pg, shop) == ROWS


def test_restore_into_a_missing_database(pg, shop, tmp_path):
    repo = LocalRepository(tmp_path / "repo")
    manifest = backup_of(repo, pg, shop)
    fresh = f"fresh_{uuid.uuid4().hex[:8]}"
    target = pg.target(fresh)
    result = restore(repo, "postgres", run=run_process, target=target, backup=manifest["id"])
    assert result["changed"] is True
    assert result["safety_copy"] is None
    assert result["diff"]["before"]["exists"] is False
    assert rows(pg, fresh) == ROWS
    assert target.state()["backup_id"] == manifest["id"]
    with pytest.raises(BackupError, match=f"cannot roll back the restore of {fresh}: its safety copy"):
        roll_back("postgres", target=target)
    assert rows(pg, fresh) == ROWS


def test_backup_refusals(pg, tmp_path):
    repo = LocalRepository(tmp_path / "repo")
    with pytest.raises(BackupError, match="cannot back up database 'nope': it does not exist"):
        take_backup(repo, "postgres", run=run_process, target=pg.target("nope"))
    wrong = PostgresTarget("postgres", port=pg.port, user=pg.user, password="wrong", pg_bin=str(PG_BIN))
    with pytest.raises(BackupError, match=f"cannot connect to PostgreSQL at 127.0.0.1:{pg.port}"):
        take_backup(repo, "postgres", run=run_process, target=wrong)
    assert repo.list_ids() == []
