"""The failover benchmarks' labs: each in a fresh home under /tmp, driven through the ``mttr`` CLI (as an
operator would: ``break`` is timed from outside), on the first free port range from a given base."""

from __future__ import annotations

import contextlib
import datetime
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.common import log
from mttr.lab import config as labconfig
from mttr.lab.cycles import connect

MTTR = Path(sys.executable).parent / "mttr"
LABS = []  # every lab started and not yet removed, for the cleanup on exit
PG_LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[\d+\] \w+:\s+(.*)")


def free_port_base(start):
    """The first port base from ``start`` (in steps of 100) with every lab port free."""
    for base in range(start, 65536 - max(labconfig.PORT_OFFSETS.values()), 100):
        if not any(labconfig.port_in_use(base + offset) for offset in labconfig.PORT_OFFSETS.values()):
            return base
    raise RuntimeError(f"no free port range from {start}")


class BenchLab:
    """One lab in a fresh home under /tmp (mode 0755: PostgreSQL runs as user postgres)."""

    def __init__(self, port_base, prefix="mttr-bench-failover-"):
        self.port_base = port_base
        self.home = Path(tempfile.mkdtemp(dir="/tmp", prefix=prefix))
        self.home.chmod(0o755)
        self.state = None
        LABS.append(self)

    def mttr(self, *args, timeout=180):
        argv = [str(MTTR), "lab", "--home", str(self.home), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return proc.stdout

    def up(self, replication=None):
        self.mttr("up", "--port-base", str(self.port_base), *(["--replication", replication] if replication else []))
        self.state = labconfig.load(self.home).state
        return self

    def break_primary(self):
        return self.mttr("break", "primary-down").strip()

    def set_standby_retry_interval(self, value):
        """ALTER SYSTEM SET wal_retrieve_retry_interval on pg2 (the lab sets 1s; PostgreSQL's default is 5s)."""
        with connect(self.state, self.state["ports"]["pg2"], dbname="postgres") as conn:
            conn.execute(f"ALTER SYSTEM SET wal_retrieve_retry_interval = '{value}'")
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(1)

    @property
    def env(self):
        return {"MTTR_HOME": str(self.home)}

    def writer_config(self):
        return {
            "host": "127.0.0.1",
            "port": self.state["ports"]["lb_db"],
            "dbname": self.state["db"]["name"],
            "user": self.state["db"]["superuser"],
            "password": self.state["db"]["superuser_password"],
        }

    def promote_log(self, node, since):
        """Times of ``node``'s promote request and of 'ready to accept connections' after ``since`` (epoch)."""
        path = self.home / "log" / "pg" / f"{node}.log"
        found = {"request": None, "redo_done": None, "ready": None, "waits_after_request": 0}
        with contextlib.suppress(OSError), path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                match = PG_LOG_LINE.match(line)
                if not match:
                    continue
                stamp = (
                    datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f")
                    .replace(tzinfo=datetime.UTC)
                    .timestamp()
                )
                if stamp < since - 0.01:
                    continue
                text = match.group(2)
                if text.startswith("received promote request") and found["request"] is None:
                    found["request"] = stamp
                elif found["request"] is not None and found["redo_done"] is None:
                    if text.startswith("waiting for WAL to become available"):
                        found["waits_after_request"] += 1
                    elif text.startswith("redo done"):
                        found["redo_done"] = stamp
                if text.startswith("database system is ready to accept connections") and found["request"]:
                    found["ready"] = stamp
                    break
        return found

    def down(self):
        if self in LABS:
            LABS.remove(self)
        with contextlib.suppress(Exception):
            if labconfig.exists(self.home):
                self.mttr("down", "--purge", timeout=120)
        shutil.rmtree(self.home, ignore_errors=True)


def cleanup_labs():
    for lab in list(LABS):
        log(f"taking down the lab in {lab.home}")
        lab.down()
