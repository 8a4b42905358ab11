"""PostgreSQL nodes of the lab: a primary and a streaming standby, run with pg_ctl."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
from psycopg import sql

from .config import LabConfig
from .process import Tracked, run

LAB_CONF = "mttr_lab.conf"


class PostgresNode:
    def __init__(self, cfg: LabConfig, name: str):
        self.cfg = cfg
        self.name = name
        self.port = cfg.state["nodes"][name]["port"]
        self.data = Path(cfg.state["nodes"][name]["data"])
        self.log = cfg.path("log", "pg", f"{name}.log")
        self.tracked = Tracked(f"PostgreSQL {name}", self.data / "postmaster.pid", str(self.data))

    def tool(self, name: str) -> str:
        return os.path.join(self.cfg.state["pg_bin"], name)

    def _chown(self, path: Path) -> None:
        if self.cfg.run_as:
            shutil.chown(path, self.cfg.run_as, self.cfg.run_as)

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def pid(self) -> int | None:
        return self.tracked.pid()

    def prepare_dirs(self) -> None:
        for directory in (self.data.parent, self.log.parent, Path(self.cfg.state["db"]["socket_dir"])):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._chown(directory)
        self.data.parent.chmod(0o755)

    def write_conf(self) -> bool:
        """Settings the lab owns, kept in an included file so the rest stays PostgreSQL's own.

        With ``replication: sync`` every commit waits until a standby has flushed it
        (``synchronous_standby_names = '*'``): a standby is the lab's only other node, so an
        acknowledged write is on both. Returns whether the file changed.
        """
        sync = self.cfg.state.get("replication", "async") == "sync"
        conf = (
            "# Written by 'mttr lab up'.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.cfg.state['db']['socket_dir']}'\n"
            "wal_level = replica\n"
            "max_wal_senders = 10\n"
            "max_replication_slots = 10\n"
            "wal_keep_size = '256MB'\n"
            "hot_standby = on\n"
            "hot_standby_feedback = on\n"
            "wal_retrieve_retry_interval = '1s'\n"
            "wal_log_hints = on\n"
            f"cluster_name = 'lab-{self.name}'\n"
            f"synchronous_standby_names = '{'*' if sync else ''}'\n"
            "synchronous_commit = on\n"
        )
        path = self.data / LAB_CONF
        changed = not path.exists() or path.read_text() != conf
        path.write_text(conf)
        self._chown(self.data / LAB_CONF)
        main_conf = self.data / "postgresql.conf"
        if f"include_if_exists = '{LAB_CONF}'" not in main_conf.read_text():
            with main_conf.open("a") as handle:
                handle.write(f"\ninclude_if_exists = '{LAB_CONF}'\n")
        hba = (
            "# Written by 'mttr lab up': local socket for the lab's owner, passwords on loopback.\n"
            "local   all          all                     trust\n"
            "host    all          all        127.0.0.1/32 scram-sha-256\n"
            "host    replication  all        127.0.0.1/32 scram-sha-256\n"
        )
        (self.data / "pg_hba.conf").write_text(hba)
        self._chown(self.data / "pg_hba.conf")
        return changed

    def reconfigure(self) -> bool:
        """Rewrite the lab's settings of a running node and reload them if they changed."""
        if not self.write_conf():
            return False
        with self.connect() as conn:
            conn.execute("SELECT pg_reload_conf()")
        return True

    def initdb(self) -> None:
        self.prepare_dirs()
        db = self.cfg.state["db"]
        pwfile = self.data.parent / f".{self.name}.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(db["superuser_password"] + "\n")
        self._chown(pwfile)
        try:
            run(
                [
                    self.tool("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    db["superuser"],
                    f"--pwfile={pwfile}",
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--data-checksums",
                ],
                what=f"initdb for {self.name}",
                user=self.cfg.run_as,
                cwd=self.data.parent,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self.write_conf()

    def base_backup_from(self, primary: PostgresNode) -> None:
        """Build this node as a streaming standby of ``primary`` (always with a fast checkpoint)."""
        self.prepare_dirs()
        db = self.cfg.state["db"]
        env = dict(os.environ, PGPASSWORD=db["superuser_password"])
        run(
            [
                self.tool("pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                db["superuser"],
                "-D",
                str(self.data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-password",
            ],
            what=f"pg_basebackup of {self.name} from {primary.name}",
            user=self.cfg.run_as,
            env=env,
            cwd=self.data.parent,
        )
        self.write_conf()

    def start(self) -> None:
        self.write_conf()
        run(
            [self.tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"],
            what=f"starting PostgreSQL {self.name} (log: {self.log})",
            user=self.cfg.run_as,
            cwd=self.data.parent,
        )

    def stop(self, mode: str = "fast") -> int | None:
        pid = self.pid()
        if pid is None:
            return None
        run(
            [self.tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
            what=f"stopping PostgreSQL {self.name}",
            user=self.cfg.run_as,
            cwd=self.data.parent,
        )
        return pid

    def connect(self, dbname: str = "postgres", timeout: int = 3) -> psycopg.Connection:
        db = self.cfg.state["db"]
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname=dbname,
            user=db["superuser"],
            password=db["superuser_password"],
            connect_timeout=timeout,
            autocommit=True,
        )

    def in_recovery(self) -> bool | None:
        """True for a standby, False for a primary, None when it does not answer."""
        try:
            with self.connect() as conn:
                return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        except psycopg.Error:
            return None

    def seed(self, rows: int = 1000) -> None:
        """Create the app's role, database and orders table, with ``rows`` orders."""
        db = self.cfg.state["db"]
        # seeding runs before the standby exists: with synchronous replication a commit would wait for it
        local = "SET synchronous_commit = local"
        with self.connect() as conn:
            conn.execute(local)
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (db["app_user"],)).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(db["app_user"]), sql.Literal(db["app_password"])
                    )
                )
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db["name"],)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(db["name"]), sql.Identifier(db["app_user"])
                    )
                )
        with self.connect(db["name"]) as conn:
            conn.execute(local)
            conn.execute(f"SET ROLE {db['app_user']}")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS orders ("
                " id bigserial PRIMARY KEY,"
                " customer text NOT NULL,"
                " amount_cents integer NOT NULL CHECK (amount_cents >= 0),"
                " created_at timestamptz NOT NULL DEFAULT now())"
            )
            if conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0:
                conn.execute(
                    "INSERT INTO orders (customer, amount_cents, created_at)"
                    " SELECT 'customer-' || (g %% 97), 100 + (g * 37) %% 9900, now() - (g || ' minutes')::interval"
                    " FROM generate_series(1, %s) AS g",
                    (rows,),
                )

    def replication(self) -> dict:
        """Describe this node's replication: senders on a primary, the receiver on a standby."""
        with self.connect() as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                row = conn.execute("SELECT status, sender_port FROM pg_stat_wal_receiver").fetchone()
                lag = conn.execute(
                    "SELECT GREATEST(0, COALESCE("
                    "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0))"
                ).fetchone()[0]
                return {
                    "role": "standby",
                    "receiver": row[0] if row else None,
                    "upstream_port": row[1] if row else None,
                    "replay_lag_bytes": int(lag),
                }
            senders = conn.execute(
                "SELECT application_name, state, COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)"
                " FROM pg_stat_replication"
            ).fetchall()
            return {
                "role": "primary",
                "standbys": [{"name": s[0], "state": s[1], "lag_bytes": int(s[2])} for s in senders],
            }
