# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``postgres`` backup kind: ``pg_dump -Fc``, restored into a new database and renamed in.

Restore: the dump is streamed from the repository through a hash into a local file (S3: the
transfer manager's parallel download, written in order), refused unless it matches the manifest;
``pg_restore -j N`` fills a staging database; then one transaction renames the target to its
pre-restore safety copy and the staging database to the target (sessions on the target are
terminated first, and the swap is retried if a client reconnects in between). A comment on the
database records which backup it came from. Processes run through an injected ``run(argv, env)``
(AnsibleModule.run_command in the modules).
"""

from __future__ import annotations

import datetime
import os
import shutil
import time

from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    CHUNK,
    BackupError,
    HashingReader,
    HashingWriter,
    check_artifact,
)

MARKER_PREFIX = "mttr:"
STAGING_INFIX = "__mttr_staging_"


def load_psycopg():
    try:
        import psycopg
    except ImportError:
        return None
    return psycopg


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
        }

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

    # ------------------------------------------------------------------ backup
    def dump(self, run, path, compress=1):
        argv = [self.tool("pg_dump"), "-Fc", f"-Z{compress}", "-f", path, "-d", self.database]
        rc, out, err = run(argv, self.env())
        if rc != 0:
            raise BackupError(f"pg_dump of {self.database} failed: {(err or out).strip().splitlines()[-1:]}")

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

    def _unused(self, name):
        """``name``, or ``name_2``, ``name_3``… when a database has it (two restores within one second)."""
        candidate, number = name, 1
        while self.exists(candidate):
            number += 1
            candidate = f"{name}_{number}"
        return candidate

    def restore_into_staging(self, run, dump_path, staging, jobs):
        sql = self.psycopg.sql
        with self.connect() as conn:
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            create = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(self.ident(staging))
            if owner:
                create = sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                    self.ident(staging), self.ident(owner[0])
                )
            conn.execute(create)
        argv = [self.tool("pg_restore"), "-j", str(jobs), "--exit-on-error", "-d", staging, dump_path]
        rc, out, err = run(argv, self.env())
        if rc != 0:
            self.discard(staging)
            last = (err or out).strip().splitlines()
            raise BackupError(f"pg_restore into {staging} failed: {last[-1] if last else rc}; the target is untouched")

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
