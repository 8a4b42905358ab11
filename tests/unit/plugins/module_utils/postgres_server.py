"""A throwaway PostgreSQL 15 server on 127.0.0.1 for the unit tests (probes, health_check, backups).

Deliberately not a ``conftest.py`` (``tests/conftest.py`` is imported as the top-level module ``conftest``).
Needs PostgreSQL 15's server binaries and runs them as the ``postgres`` user (the tests run as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.local_processes import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresServer:
    """A throwaway PostgreSQL 15 server on 127.0.0.1, run as ``postgres``, with a password superuser."""

    def __init__(self, user: str = "mttr_admin", password: str = "pg-S3cret!pw", prefix: str = "mttr-test-pg-"):
        self.user = user
        self.password = password
        # pytest's tmp_path is 0700 under root: the postgres user could not reach it
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.root.chmod(0o755)
        shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        self.port = 0
        try:
            self._as_postgres(
                PG_BIN / "initdb", "-D", self.data, "-U", user, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                "-N", "--no-instructions", "-E", "UTF8", "--locale=C",
            )  # fmt: skip
            pwfile.unlink()
            self._start()
        except BaseException:
            self.stop()
            raise

    def _as_postgres(self, *argv) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(arg) for arg in argv],
            user="postgres",
            group="postgres",
            extra_groups=[],
            cwd=self.root,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode:
            log = self.root / "server.log"
            raise RuntimeError(
                f"{argv[0]} failed ({result.returncode}): {result.stdout}{result.stderr}"
                + (log.read_text() if log.exists() else "")
            )
        return result

    def _start(self) -> None:
        for attempt in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                self._as_postgres(
                    PG_BIN / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-w", "-t", "30",
                    "-o", options, "start",
                )  # fmt: skip
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def query(self, dbname: str, sql: str, params=None) -> list:
        with self.connect(dbname) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def databases(self) -> list[str]:
        return [row[0] for row in self.query("postgres", "SELECT datname FROM pg_database ORDER BY datname")]

    def create_database(self, name: str) -> None:
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def probe(self, **fields) -> dict:
        """A postgres probe definition for this server (fields override)."""
        spec = {"kind": "postgres", "host": "127.0.0.1", "port": self.port, "user": self.user}
        spec["password"] = self.password
        spec.update(fields)
        return spec

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                user="postgres",
                group="postgres",
                extra_groups=[],
                cwd=self.root,
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)
