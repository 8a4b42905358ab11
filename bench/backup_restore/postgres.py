"""A throwaway PostgreSQL server on 127.0.0.1 for the backup_restore benchmark.

The lab's PostgreSQL binaries (``mttr.lab.config.find_pg_bin``), run as the lab runs them (as
``postgres`` when root runs the benchmark: ``mttr.lab.config.service_user``), ``fsync=off``, default
memory settings, a password superuser (SCRAM), a port the kernel picks; everything under one
directory in /tmp, removed by ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from mttr.lab.config import find_pg_bin, service_user
from mttr.lab.process import LabError, run


def free_port():
    """A port nothing listens on: bind to port 0, note the port, close."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, user="mttr_admin", password="b4ckup-S3cret!pw"):
        self.user = user
        self.password = password
        self.pg_bin = Path(find_pg_bin())
        self.run_as = service_user()
        self.root = Path(tempfile.mkdtemp(prefix="mttr-bench-restore-pg-", dir="/tmp"))
        self.root.chmod(0o755)  # the server's user must reach it
        self.data = self.root / "data"
        self.port = 0
        try:
            pwfile = self.root / "pwfile"
            pwfile.write_text(password + "\n")
            self._own(self.root, pwfile)
            self._run(
                "initdb", "-D", self.data, "-U", user, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                "-N", "--no-instructions", "-E", "UTF8", "--locale=C",
            )  # fmt: skip
            pwfile.unlink()
            self._start()
        except BaseException:
            self.stop()
            raise

    def _own(self, *paths):
        if self.run_as:
            for path in paths:
                shutil.chown(path, self.run_as, self.run_as)

    def _run(self, tool, *args):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        argv = [str(self.pg_bin / tool), *(str(arg) for arg in args)]
        return run(argv, what=tool, user=self.run_as, env=env, cwd=self.root, timeout=60)

    def _start(self):
        for attempt in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                self._run(
                    "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-w", "-t", "30", "-o", options, "start"
                )
                return
            except LabError:
                if attempt == 2:
                    raise

    def connect(self, dbname="postgres"):
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def query(self, dbname, statement, params=None):
        with self.connect(dbname) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name):
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def stop(self):
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(LabError):
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
