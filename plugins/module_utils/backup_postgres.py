# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``postgres`` backup kind: ``pg_dump -Fc``, restored into a new database and renamed in.

Restore: the dump is streamed from the repository through a hash into a local file (S3: the
transfer manager's parallel download, written in order), refused unless it matches the manifest;
``pg_restore -j N`` fills a staging database; then one transaction renames the target to its
pre-restore safety copy and the staging database to the target (sessions on the target are
terminated first, and the swap is retried if a client reconnects in between). A comment on the
database records which backup it came from and the fingerprint of its data then; whether the
database still holds that backup is proven by its fingerprint now, never by the comment alone.
Processes run through an injected ``run(argv, env)`` (MttrModule.run in the modules).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import threading
import time

from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    CHUNK,
    BackupError,
    HashingReader,
    HashingWriter,
    check_artifact,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_space import DISK_FULL, disk_full, said
from ansible_collections.mttr.recovery.plugins.module_utils.pg import load_psycopg

MARKER_PREFIX = "mttr:"
STAGING_INFIX = "__mttr_staging_"
LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost", "")

# The schema part of a database's fingerprint: every object a dump restores and how it is defined,
# sequences' positions and large objects, in a stable order (no OIDs: a restored copy has others).
USER_NAMESPACES = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'"
SCHEMA_QUERIES = (
    f"""SELECT n.nspname, pg_get_userbyid(n.nspowner), n.nspacl::text FROM pg_namespace n
        WHERE {USER_NAMESPACES} ORDER BY 1""",
    f"""SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner), c.relacl::text, c.relpersistence,
               c.reloptions::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_NAMESPACES} ORDER BY 1, 2""",
    f"""SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attacl::text,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped AND {USER_NAMESPACES} ORDER BY 1, 2, 10""",
    f"""SELECT n.nspname, c.relname, o.conname, pg_get_constraintdef(o.oid) FROM pg_constraint o
        JOIN pg_namespace n ON n.oid = o.connamespace LEFT JOIN pg_class c ON c.oid = o.conrelid
        WHERE {USER_NAMESPACES} ORDER BY 1, 2, 3""",
    f"""SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_NAMESPACES} ORDER BY 1, 2""",
    f"""SELECT n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {USER_NAMESPACES}
        ORDER BY 1, 2""",
    f"""SELECT p.oid::regprocedure::text, p.prokind, md5(p.prosrc), pg_get_userbyid(p.proowner), p.proacl::text
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_NAMESPACES} ORDER BY 1""",
    f"""SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {USER_NAMESPACES}
        ORDER BY 1, 2""",
    f"""SELECT n.nspname, t.typname, t.typtype, pg_get_userbyid(t.typowner),
               (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype IN ('e', 'd', 'r', 'm') AND {USER_NAMESPACES} ORDER BY 1, 2""",
    """SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2""",
    """SELECT extname, extversion FROM pg_extension ORDER BY 1""",
    """SELECT oid::text, pg_get_userbyid(lomowner), lomacl::text FROM pg_largeobject_metadata ORDER BY oid""",
)
TABLES = f"""SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND {USER_NAMESPACES} ORDER BY 1"""
# Rows hashed in any order: a sum of 64-bit row hashes. hash_record_extended (PostgreSQL 14+) hashes
# the values themselves; a type without an extended hash function (json, point...) falls back to an
# md5 of the row's text.
ROWS_BY_HASH = "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0)::text FROM ONLY {} t"
ROWS_BY_TEXT = (
    "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint), 0)::text FROM ONLY {} t"
)


class PostgresTarget:
    def __init__(
        self, database, host="127.0.0.1", port=5432, user=None, password=None, maintenance_db="postgres", pg_bin=None
    ):
        self.database = database
        self.conn_params = {"host": host, "port": port, "user": user, "password": password}
        self.maintenance_db = maintenance_db
        self.pg_bin = pg_bin
        self.psycopg = load_psycopg()
        if self.psycopg is None:
            raise BackupError("the postgres kind needs psycopg on the host (pip install 'psycopg[binary]')")

    # ------------------------------------------------------------------ helpers
    def tool(self, name):
        if self.pg_bin:
            return os.path.join(self.pg_bin, name)
        found = shutil.which(name)
        if not found:
            raise BackupError(f"{name} not found: install PostgreSQL's client tools or set pg_bin")
        return found

    def env(self):
        env = {"PGHOST": str(self.conn_params["host"]), "PGPORT": str(self.conn_params["port"])}
        if self.conn_params["user"]:
            env["PGUSER"] = self.conn_params["user"]
        if self.conn_params["password"]:
            env["PGPASSWORD"] = self.conn_params["password"]
        return env

    def connect(self, dbname=None):
        params = {k: v for k, v in self.conn_params.items() if v not in (None, "")}
        try:
            return self.psycopg.connect(
                dbname=dbname or self.maintenance_db, autocommit=True, connect_timeout=5, **params
            )
        except self.psycopg.Error as exc:
            raise BackupError(
                f"cannot connect to PostgreSQL at {params.get('host')}:{params.get('port')}: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from None

    def ident(self, name):
        return self.psycopg.sql.Identifier(name)

    def exists(self, name=None):
        with self.connect() as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name or self.database,)).fetchone()
        return row is not None

    def state(self):
        """What the database's comment says about its last restore."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
        if not row or not row[0] or not row[0].startswith(MARKER_PREFIX):
            return {}
        fields = dict(part.split("=", 1) for part in row[0][len(MARKER_PREFIX) :].split() if "=" in part)
        return {
            "backup_id": fields.get("backup_id"),
            "safety_copy": fields.get("safety_copy") or None,
            "rolled_back": fields.get("rolled_back") == "yes",
            "undone_copy": fields.get("undone_copy") or None,
            "fingerprint": fields.get("fingerprint") or None,
        }

    # ------------------------------------------------------------------ fingerprints
    def fingerprint(self, database=None, expected=(), conn=None, rows=True):
        """What proves a database's content: 32 hex digits, the schema's digest then the rows'.

        The schema part (every object and its definition, sequences, large objects) is cheap; the
        rows part reads every table. When none of the ``expected`` fingerprints has this schema, the
        rows are not read and the rows part is dashes (it cannot match); ``rows=False`` returns the
        schema part alone. None when the database cannot be read whole.
        """
        own = conn is None
        if own:
            try:
                conn = self.connect(database or self.database)
            except BackupError:
                return None
        try:
            schema = self._schema_digest(conn)
            if not rows:
                return schema
            if expected and not any(value.startswith(schema) for value in expected):
                return schema + "-" * 16
            return schema + self._rows_digest(conn)
        except self.psycopg.Error:
            return None
        finally:
            if own:
                conn.close()

    def _schema_digest(self, conn):
        digest = hashlib.sha256()
        for query in SCHEMA_QUERIES:
            digest.update(json.dumps(conn.execute(query).fetchall(), default=str).encode() + b"\n")
        return digest.hexdigest()[:16]

    def _rows_digest(self, conn):
        digest = hashlib.sha256()
        for (table,) in conn.execute(TABLES).fetchall():
            try:
                with conn.transaction():
                    count, total = conn.execute(ROWS_BY_HASH.format(table)).fetchone()
            except self.psycopg.errors.UndefinedFunction:
                with conn.transaction():
                    count, total = conn.execute(ROWS_BY_TEXT.format(table)).fetchone()
            digest.update(f"{table}\0{count}\0{total}\n".encode())
        return digest.hexdigest()[:16]

    def holds(self, backup_id, manifest_fingerprint=None):
        """Whether the database holds the data of ``backup_id`` now, proven from the data.

        Either its fingerprint is the one taken when that backup was restored into it (the comment
        names the backup; the data must match), or it is the fingerprint the backup recorded of its
        source. A comment alone proves nothing: a second data loss leaves it in place.
        """
        if not self.exists():
            return False
        state = self.state()
        restored = state.get("backup_id") == backup_id and not state["rolled_back"]
        wanted = [value for value in (state.get("fingerprint") if restored else None, manifest_fingerprint) if value]
        if not wanted:
            return False
        return self.fingerprint(expected=wanted) in wanted

    def _comment(self, conn, database, state):
        text = MARKER_PREFIX + " " + " ".join(f"{k}={v}" for k, v in state.items() if v not in (None, ""))
        sql = self.psycopg.sql
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(self.ident(database), sql.Literal(text)))

    def version(self, run):
        rc, out, _stderr = run([self.tool("pg_dump"), "--version"], None)
        return out.strip() if rc == 0 else "unknown"

    def size(self):
        with self.connect() as conn:
            return conn.execute("SELECT pg_database_size(%s)", (self.database,)).fetchone()[0]

    def tablespace(self):
        """The tablespace of the target (the default one's when it does not exist yet)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT t.spcname FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace"
                " WHERE d.datname = %s",
                (self.database,),
            ).fetchone()
        return row[0] if row else "pg_default"

    def location(self, tablespace):
        """The directory a tablespace's files are in, when this host can see it (the server is local); or why not."""
        host = str(self.conn_params.get("host") or "")
        if host not in LOCAL_HOSTS and not host.startswith("/"):
            return None, f"the server ({host}) is not on this host"
        with self.connect() as conn:
            if tablespace == "pg_default":
                try:
                    path = os.path.join(conn.execute("SHOW data_directory").fetchone()[0], "base")
                except self.psycopg.Error:
                    return None, "the server's data directory cannot be read with this role"
            else:
                path = conn.execute(
                    "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = %s", (tablespace,)
                ).fetchone()[0]
        try:
            os.statvfs(path)
        except OSError:
            return None, f"{path} is not reachable from this host"
        return path, None

    # ------------------------------------------------------------------ backup
    def dump(self, run, path, compress=1):
        """pg_dump the database; return what the dump holds: its size on the server and its fingerprint.

        The dump and the fingerprint see one snapshot (exported here, imported by pg_dump), so the
        fingerprint is the dumped data's; it is taken in a thread while pg_dump runs.
        """
        conn = self.connect(self.database)
        try:
            conn.isolation_level = self.psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
                size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
                taken = {}
                thread = threading.Thread(
                    target=lambda: taken.update(fingerprint=self.fingerprint(conn=conn)),
                    name="mttr-fingerprint",
                    daemon=True,
                )
                thread.start()
                argv = [self.tool("pg_dump"), "-Fc", f"-Z{compress}", f"--snapshot={snapshot}"]
                try:
                    rc, out, err = run([*argv, "-f", path, "-d", self.database], self.env())
                finally:
                    thread.join()
        finally:
            conn.close()
        if rc != 0:
            raise BackupError(f"pg_dump of {self.database} failed: {said(err or out) or rc}")
        return {"database_size": size, "fingerprint": taken.get("fingerprint")}

    # ------------------------------------------------------------------ restore
    def recover(self):
        """Drop staging databases left by an interrupted restore (they never hold the only copy)."""
        done = []
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (self.base_name() + STAGING_INFIX,)
            ).fetchall()
            for (name,) in rows:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                conn.execute(self.psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(self.ident(name)))
                done.append(f"dropped the leftover staging database {name}")
        return done

    def fetch_verified(self, repository, manifest, artifact, path):
        """Stream the dump into ``path`` while hashing; refuse it unless it matches the manifest."""
        with open(path, "wb") as handle:
            writer = HashingWriter(handle)
            if hasattr(repository, "download_artifact"):
                repository.download_artifact(manifest["id"], artifact["name"], writer)
            else:
                source = repository.open_artifact(manifest["id"], artifact["name"])
                try:
                    shutil.copyfileobj(source, writer, CHUNK)
                finally:
                    source.close()
        check_artifact(writer, artifact, manifest["id"])
        return writer.size

    def verify_in_place(self, path, artifact, backup_id):
        """Hash a dump already on local disk (a local repository) in one read."""
        with open(path, "rb") as handle:
            reader = HashingReader(handle)
            reader.drain()
        check_artifact(reader, artifact, backup_id)
        return reader.size

    def base_name(self):
        """The database name cut so that every derived name fits PostgreSQL's 63 bytes."""
        return self.database[: 63 - len(STAGING_INFIX) - 16]

    def names(self, backup_id):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
        short = backup_id[-6:]
        base = self.base_name()
        return {
            "staging": f"{base}{STAGING_INFIX}{short}",
            "safety": self._unused(f"{base}__pre_restore_{stamp}"),
            "undone": self._unused(f"{base}__undone_{stamp}"),
        }

    def copies(self):
        """The pre-restore and undone copies of the database, oldest first."""
        pattern = re.compile(rf"^{re.escape(self.base_name())}__(pre_restore|undone)_(\d{{14}})(?:_(\d+))?$")
        state = self.state() if self.exists() else {}
        current = None if state.get("rolled_back") else state.get("safety_copy")
        with self.connect() as conn:
            names = [row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()]
        found = []
        for name in names:
            match = pattern.match(name)
            if not match:
                continue
            stamp = match.group(2)
            # within one second, a roll back's undone copy comes before the next restore's safety copy
            order = (stamp, match.group(1) == "pre_restore", int(match.group(3) or 1))
            created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}Z"
            entry = {"name": name, "database": name, "kind": match.group(1), "created": created}
            found.append((order, dict(entry, current=name == current)))
        return [entry for _order, entry in sorted(found, key=lambda item: item[0])]

    def remove_copy(self, name):
        """Drop a safety copy, ending its sessions first."""
        sql = self.psycopg.sql
        for _attempt in range(50):
            with self.connect() as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                try:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(self.ident(name)))
                    return
                except self.psycopg.errors.ObjectInUse:
                    time.sleep(0.05)
        raise BackupError(f"could not drop the safety copy {name}: clients keep connecting to it")

    def _unused(self, name):
        """``name``, or ``name_2``, ``name_3``… when a database has it (two restores within one second)."""
        candidate, number = name, 1
        while self.exists(candidate):
            number += 1
            candidate = f"{name}_{number}"
        return candidate

    def restore_into_staging(self, run, dump_path, staging, jobs, space=None, need=None):
        """Create the staging database (owner and tablespace of the target) and pg_restore into it.

        ``space`` is the tablespace's filesystem before the restore began, for a disk-full message.
        """
        sql = self.psycopg.sql
        what = f"restoring into {staging}"
        with self.connect() as conn:
            row = conn.execute(
                "SELECT pg_get_userbyid(d.datdba), t.spcname FROM pg_database d"
                " JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = %s",
                (self.database,),
            ).fetchone()
            create = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(self.ident(staging))
            if row:
                create = sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 TABLESPACE {}").format(
                    self.ident(staging), self.ident(row[0]), self.ident(row[1])
                )
            try:
                conn.execute(create)
            except self.psycopg.Error as exc:
                text = str(exc)
                if DISK_FULL in text:
                    raise BackupError(disk_full(space, what, need, said(text))) from None
                raise BackupError(f"cannot create the staging database {staging}: {said(text)}") from None
        argv = [self.tool("pg_restore"), "-j", str(jobs), "--exit-on-error", "-d", staging, dump_path]
        rc, out, err = run(argv, self.env())
        if rc != 0:
            self.discard(staging)
            text = f"{err or ''}\n{out or ''}"
            lines = said(text, noise=("Command was:", "HINT:", "pg_restore: warning: errors ignored")) or rc
            if DISK_FULL in text:
                raise BackupError(disk_full(space, what, need, lines)) from None
            raise BackupError(f"pg_restore into {staging} failed: {lines}; the target is untouched")

    def discard(self, staging):
        """Drop a staging database (a failed or unverified restore)."""
        with self.connect() as conn:
            conn.execute(self.psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(self.ident(staging)))

    def swap_in(self, staging, safety, marker, attempts=50):
        """Rename target -> safety and staging -> target in one transaction; return the safety name."""
        sql = self.psycopg.sql
        target_exists = self.exists()
        last_error = None
        for _attempt in range(attempts):
            with self.connect() as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                    ([self.database, staging],),
                )
                try:
                    with conn.transaction():
                        if target_exists:
                            conn.execute(
                                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                    self.ident(self.database), self.ident(safety)
                                )
                            )
                        conn.execute(
                            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                self.ident(staging), self.ident(self.database)
                            )
                        )
                        self._comment(conn, self.database, dict(marker, safety_copy=safety if target_exists else None))
                    return safety if target_exists else None
                except self.psycopg.errors.ObjectInUse as exc:
                    last_error = exc
                    time.sleep(0.05)
        raise BackupError(f"could not swap in the restored database: clients keep reconnecting ({last_error})")

    def roll_back(self):
        """Put the pre-restore safety copy back in one transaction; return the undone database's name."""
        state = self.state()
        if not state or state.get("rolled_back"):
            return None
        undone = self.names(state["backup_id"] or "000000")["undone"]
        safety = state.get("safety_copy")
        if not safety or not self.exists(safety):
            raise BackupError(
                f"cannot roll back the restore of {self.database}: its safety copy {safety or '(none)'} is gone"
            )
        sql = self.psycopg.sql
        for _attempt in range(50):
            with self.connect() as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                    ([self.database, safety],),
                )
                try:
                    with conn.transaction():
                        conn.execute(
                            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                self.ident(self.database), self.ident(undone)
                            )
                        )
                        conn.execute(
                            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                self.ident(safety), self.ident(self.database)
                            )
                        )
                        self._comment(
                            conn,
                            self.database,
                            {"backup_id": state["backup_id"], "rolled_back": "yes", "undone_copy": undone},
                        )
                    return undone
                except self.psycopg.errors.ObjectInUse:
                    time.sleep(0.05)
        raise BackupError("could not roll back: clients keep reconnecting to the database")
