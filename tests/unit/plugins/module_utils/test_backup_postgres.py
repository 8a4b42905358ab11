"""The postgres backup kind against a real PostgreSQL 15 server: pg_dump, verified restore by rename, roll back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import (
    backup_info,
    prune_safety_copies,
    restore,
    roll_back,
    safety_copies,
    take_backup,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_postgres import STAGING_INFIX, PostgresTarget
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import BackupError, LocalRepository
from ansible_collections.mttr.recovery.tests.support.backups import (
    SmallFilesystem,
    flip_byte,
    remove_raw,
    store_backup,
    truncate,
)
from ansible_collections.mttr.recovery.tests.support.postgres import PostgresServer
from ansible_collections.mttr.recovery.tests.support.processes import run_process

pytestmark = pytest.mark.integration

ROWS = 250


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer(password="b4ckup-S3cret!pw")
    yield server
    server.stop()


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
    state = target.state()
    fingerprint = state.pop("fingerprint")
    assert len(fingerprint) == 32
    assert comment(pg, shop) == f"mttr: backup_id={manifest['id']} fingerprint={fingerprint} safety_copy={safety}"
    assert state == {
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
    pg.query(shop, "DELETE FROM orders WHERE id > 200")
    first = restore(repo, "postgres", run=run_process, target=target)
    pg.query(shop, "DELETE FROM orders WHERE id > 10")
    second = restore(repo, "postgres", run=run_process, target=target, force=True)
    assert second["changed"] is True
    assert second["safety_copy"] != first["safety_copy"]
    assert rows(pg, shop) == ROWS
    assert rows(pg, second["safety_copy"]) == 10
    assert rows(pg, first["safety_copy"]) == 200
    assert restore(repo, "postgres", run=run_process, target=target, force=True)["changed"] is True
    rolled = roll_back("postgres", target=target)
    assert rows(pg, shop) == ROWS
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
    pg.query(shop, "DELETE FROM orders WHERE id > 100")
    with pytest.raises(BackupError, match=f"artifact {shop}.dump is missing"):
        restore(repo, "postgres", run=run_process, target=target)
    assert rows(pg, shop) == 100
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
    wrong = PostgresTarget("postgres", port=pg.port, user=pg.user, password="wrong", pg_bin=str(pg.bin))
    with pytest.raises(BackupError, match=f"cannot connect to PostgreSQL at 127.0.0.1:{pg.port}"):
        take_backup(repo, "postgres", run=run_process, target=wrong)
    assert repo.list_ids() == []


# ----------------------------------------------------------------------------- proof, safety copies, work dirs


def test_a_second_data_loss_is_restored_again(pg, repo, shop):
    """'Already holds backup X' is proven from the data, not taken from the database's comment."""
    target = pg.target(shop)
    backup_of(repo, pg, shop)
    pg.query(shop, "DROP TABLE orders")
    assert restore(repo, "postgres", run=run_process, target=target)["changed"] is True
    assert rows(pg, shop) == ROWS

    pg.query(shop, "DROP TABLE orders")  # the same loss again: the comment still names the backup
    check = restore(repo, "postgres", check_mode=True, run=run_process, target=target)
    assert check["changed"] is True
    assert "would restore" in check["msg"]
    assert rows(pg, shop) is None
    again = restore(repo, "postgres", run=run_process, target=target)
    assert again["changed"] is True
    assert rows(pg, shop) == ROWS
    unchanged = restore(repo, "postgres", run=run_process, target=target)
    assert unchanged["changed"] is False
    assert "already holds backup" in unchanged["msg"]

    for change in (
        "INSERT INTO orders VALUES (100000, 'late order')",
        "UPDATE customers SET name = 'ada lovelace' WHERE id = 1",
        "CREATE INDEX customers_name ON customers (name)",
        "ALTER TABLE customers ADD COLUMN email text",
    ):
        pg.query(shop, change)
        assert restore(repo, "postgres", check_mode=True, run=run_process, target=target)["changed"] is True, change
        assert restore(repo, "postgres", run=run_process, target=target)["changed"] is True, change
        assert restore(repo, "postgres", run=run_process, target=target)["changed"] is False, change


def test_a_comment_without_proof_is_not_trusted(pg, shop, tmp_path):
    """A backup taken by an older version has no fingerprint: the restored database's own is recorded."""
    repo = LocalRepository(tmp_path / "repo")
    target = pg.target(shop)
    manifest = backup_of(repo, pg, shop)
    artifact = {k: v for k, v in manifest["artifacts"][0].items() if k != "fingerprint"}
    repo.write_manifest(manifest["id"], dict(manifest, artifacts=[artifact]))
    assert restore(repo, "postgres", run=run_process, target=target)["changed"] is True
    assert target.state()["fingerprint"]
    assert restore(repo, "postgres", run=run_process, target=target)["changed"] is False
    pg.query("postgres", f"COMMENT ON DATABASE {shop} IS 'mttr: backup_id={manifest['id']}'")
    assert restore(repo, "postgres", run=run_process, target=target)["changed"] is True
    assert restore(repo, "postgres", run=run_process, target=target)["changed"] is False


def test_a_database_that_equals_the_backup_needs_no_restore(pg, shop, tmp_path):
    """The backup records its data's fingerprint: a database never restored but holding that data is unchanged."""
    repo = LocalRepository(tmp_path / "repo")
    target = pg.target(shop)
    manifest = backup_of(repo, pg, shop)
    assert len(manifest["artifacts"][0]["fingerprint"]) == 32
    databases = pg.databases()
    result = restore(repo, "postgres", run=run_process, target=target)
    assert result["changed"] is False
    assert pg.databases() == databases
    pg.query(shop, "DELETE FROM customers")
    assert restore(repo, "postgres", run=run_process, target=target)["changed"] is True
    assert rows(pg, shop, "customers") == 2


def test_safety_copies_are_listed_and_pruned(pg, shop, tmp_path):
    repo = LocalRepository(tmp_path / "repo")
    target = pg.target(shop)
    backup_of(repo, pg, shop)
    made = [
        restore(repo, "postgres", run=run_process, target=target, force=True)["safety_copy"] for _attempt in range(3)
    ]
    copies = safety_copies("postgres", target=target)
    assert [copy["database"] for copy in copies] == made
    assert [copy["current"] for copy in copies] == [False, False, True]
    assert [copy["kind"] for copy in copies] == ["pre_restore"] * 3
    assert backup_info(repo, target=target)["safety_copies"] == copies

    check = prune_safety_copies("postgres", 1, check_mode=True, target=target)
    assert check["changed"] is True and check["removed"] == made[:2]
    assert all(name in pg.databases() for name in made)
    session = pg.connect(made[0])  # a session on a copy does not stop its removal
    try:
        result = prune_safety_copies("postgres", 1, target=target)
    finally:
        session.close()
    assert result["removed"] == made[:2]
    assert [name for name in pg.databases() if name.startswith(f"{shop}__")] == made[2:]
    assert prune_safety_copies("postgres", 1, target=target)["changed"] is False
    rolled = roll_back("postgres", target=target)
    assert rolled["changed"] is True
    assert [copy["kind"] for copy in safety_copies("postgres", target=target)] == ["undone"]
    assert pg.target("other_db").state() == {} and safety_copies("postgres", target=pg.target("nope")) == []


CHILD = """
import json, sys
from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import make_repository
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import restore
from ansible_collections.mttr.recovery.plugins.module_utils.backup_postgres import PostgresTarget
from ansible_collections.mttr.recovery.tests.support.processes import run_process

options, target, tmp_dir = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print("ready", flush=True)
restore(make_repository(options), "postgres", run=run_process, target=PostgresTarget(**target), tmp_dir=tmp_dir)
"""


def test_a_killed_restore_leaves_no_work_directory_behind(pg, moto, shop, tmp_path):
    repo = moto.repository()
    target = pg.target(shop)
    with pg.connect(shop) as conn:  # a dump big enough to be caught while pg_restore runs
        conn.execute("INSERT INTO orders SELECT g, repeat(md5(g::text), 20) FROM generate_series(1000, 60000) g")
    backup_of(repo, pg, shop)
    pg.query(shop, "DELETE FROM orders WHERE id > 10")
    work = tmp_path / "work"
    work.mkdir()
    options = moto.repository_options(repo.bucket, prefix=repo.prefix)
    spec = {"database": shop, "port": pg.port, "user": pg.user, "password": pg.password, "pg_bin": str(pg.bin)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(options), json.dumps(spec), str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None and not staging_databases(pg, shop):
            time.sleep(0.005)
        assert child.poll() is None, child.stderr.read()
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    left = [path.name for path in work.iterdir()]
    assert [name for name in left if name.startswith("mttr-restore-")], left

    result = restore(repo, "postgres", run=run_process, target=target, tmp_dir=str(work))
    assert result["changed"] is True
    assert list(work.iterdir()) == []
    assert any(line.startswith("removed the work directory of a killed restore") for line in result["recovered"])
    assert any(line.startswith("dropped the leftover staging database") for line in result["recovered"])
    assert rows(pg, shop) == ROWS + 59001

    # a restore from a local repository needs no work directory at all
    local = LocalRepository(tmp_path / "repo")
    backup_of(local, pg, shop)
    restore(local, "postgres", run=run_process, target=target, tmp_dir=str(work), force=True)
    assert list(work.iterdir()) == []


# ----------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_tablespace(pg):
    """A tablespace on a 20 MiB tmpfs, and a database in it holding little (an empty one takes ~7.5 MiB)."""
    try:
        filesystem = SmallFilesystem(20, owner="postgres")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    name = f"small_{uuid.uuid4().hex[:8]}"
    try:
        pg.query("postgres", f"CREATE TABLESPACE {name} LOCATION '{filesystem.path}'")
        pg.query("postgres", f"CREATE DATABASE {name} TABLESPACE {name}")
        with pg.connect(name) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
            conn.execute("INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 10) g")
        yield name, filesystem
    finally:
        with pg.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            for (other,) in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (name,)):
                conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
            conn.execute(f"DROP TABLESPACE IF EXISTS {name}")
        filesystem.unmount()


@pytest.fixture
def big_backup(pg, tmp_path):
    """A backup of a database of ~24 MiB (a small, compressible dump)."""
    name = f"big_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    with pg.connect(name) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
        conn.execute("INSERT INTO orders SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 50000) g")
    repo = LocalRepository(tmp_path / "repo")
    manifest = take_backup(repo, "postgres", run=run_process, target=pg.target(name), source_name="orders")["backup"]
    pg.query("postgres", f"DROP DATABASE {name}")
    return repo, manifest


def test_a_restore_the_tablespace_has_no_room_for_is_refused_before_it_starts(pg, small_tablespace, big_backup):
    name, filesystem = small_tablespace
    repo, manifest = big_backup
    assert manifest["artifacts"][0]["database_size"] > filesystem.free()
    databases = pg.databases()
    for check_mode in (True, False):
        with pytest.raises(BackupError) as raised:
            restore(repo, "postgres", check_mode=check_mode, run=run_process, target=pg.target(name))
        message = str(raised.value)
        assert f"not enough space on {filesystem.path} (tmpfs)" in message, message
        assert "MiB needed" in message and "nothing was changed" in message
    assert pg.databases() == databases
    assert rows(pg, name) == 10


def test_a_tablespace_that_fills_up_during_the_restore_is_reported_as_full(pg, small_tablespace, big_backup):
    name, filesystem = small_tablespace
    repo, _manifest = big_backup
    databases = pg.databases()
    with pytest.raises(BackupError) as raised:
        restore(repo, "postgres", run=run_process, target=pg.target(name), check_free_space=False)
    message = str(raised.value)
    assert f"{filesystem.path} (tmpfs) is full" in message, message
    assert "No space left on device" in message  # PostgreSQL's own error
    assert "MiB needed" in message and "the target is untouched" in message
    assert "\n" not in message
    assert pg.databases() == databases
    assert rows(pg, name) == 10
    assert staging_databases(pg, name) == []
