"""A throwaway PostgreSQL server on 127.0.0.1, and commands run as the unprivileged ``postgres`` user.

The server binaries are the lab's own (``mttr.lab.config.find_pg_bin()``: ``MTTR_PG_BIN``, else the newest
``/usr/lib/postgresql/*/bin``, else PATH). PostgreSQL refuses to run as root, which the tests run as: the
server and its tools run as ``postgres``.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from ansible_collections.mttr.recovery.tests.support.processes import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
COLLECTION_ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def pg_bin() -> Path:
    """The directory of PostgreSQL's server binaries, found as the lab finds it."""
    from mttr.lab.config import find_pg_bin

    return Path(find_pg_bin())


def as_postgres(argv, cwd, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``postgres`` (no supplementary groups), its output captured; never raises on failure."""
    return subprocess.run(
        [str(arg) for arg in argv],
        user="postgres",
        group="postgres",
        extra_groups=[],
        cwd=cwd,
        env=env if env is not None else {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_as_postgres(code: str, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run Python ``code`` as ``postgres`` with the system Python, the collection importable.

    The venv's interpreter lives under /root, which that user cannot enter. Debian 12's Python 3.11.2 also
    predates tarfile's extraction filters: the engine's own member checks are all that guard it there.
    """
    path = Path(tempfile.mkdtemp(prefix="mttr-pypath-", dir="/tmp"))
    path.chmod(0o755)
    try:
        (path / "ansible_collections" / "mttr").mkdir(parents=True)
        (path / "ansible_collections" / "mttr" / "recovery").symlink_to(COLLECTION_ROOT)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(path), "LC_ALL": "C.UTF-8"}
        return as_postgres([SYSTEM_PYTHON, "-c", code, *args], cwd="/tmp", env=env, timeout=timeout)
    finally:
        shutil.rmtree(path)


def give_to_postgres(*roots) -> None:
    """chown -R postgres: what the unprivileged user must read (a repository) or write (a target's parent)."""
    entry = pwd.getpwnam("postgres")
    for root in roots:
        shutil.chown(root, "postgres", "postgres")
        for parent, dirs, files in os.walk(root):
            for name in dirs + files:
                os.chown(os.path.join(parent, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


class PostgresServer:
    """A throwaway PostgreSQL server on 127.0.0.1, run as ``postgres``, with a password superuser."""

    def __init__(self, user: str = "mttr_admin", password: str = "pg-S3cret!pw", prefix: str = "mttr-test-pg-"):
        self.user = user
        self.password = password
        self.bin = pg_bin()
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
            self.tool(
                "initdb", "-D", self.data, "-U", user, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                "-N", "--no-instructions", "-E", "UTF8", "--locale=C",
            )  # fmt: skip
            pwfile.unlink()
            self._start()
        except BaseException:
            self.stop()
            raise

    def tool(self, name: str, *args) -> subprocess.CompletedProcess:
        """Run one of the server's binaries (``pg_ctl``, ``initdb``...) as ``postgres``; raise with its log."""
        result = as_postgres([self.bin / name, *args], cwd=self.root)
        if result.returncode:
            log = self.root / "server.log"
            raise RuntimeError(
                f"{name} failed ({result.returncode}): {result.stdout}{result.stderr}"
                + (log.read_text() if log.exists() else "")
            )
        return result

    def _start(self) -> None:
        for attempt in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                self.tool(
                    "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-w", "-t", "30", "-o", options, "start"
                )
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

    def target(self, database: str):
        """The backup engine's view of ``database`` on this server."""
        from ansible_collections.mttr.recovery.plugins.module_utils.backup_postgres import PostgresTarget

        return PostgresTarget(
            database, host="127.0.0.1", port=self.port, user=self.user, password=self.password, pg_bin=str(self.bin)
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            as_postgres([self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"], cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)
