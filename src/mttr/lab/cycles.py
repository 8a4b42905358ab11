"""Acknowledged-write accounting across failover cycles, in the spirit of Jepsen.

A writer inserts rows through HAProxy's write endpoint without pause and keeps the id of every
INSERT whose commit the server acknowledged (an attempt that errors, or whose answer is lost, is
not counted: the client never heard it succeed). Each cycle kills the current primary
(``primary-down``: an immediate shutdown, as a crash), runs the failover playbook and the rejoin
through ansible-runner, and then checks the outcome on the servers themselves:

* every acknowledged row is on the current primary (the ones that are not are the lost writes);
* the other node streams from the current primary (its WAL receiver's sender port), the primary
  lists it in ``pg_stat_replication``, and a row written on the primary now shows up on it.

Used by ``tests/integration/test_failover_cycles.py`` (3 cycles) and ``bench/failover/cycles.py``
(20 and more, with the figures).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from .core import Lab

WRITER = "cycle-writer"


def connect(state: dict, port: int, dbname: str = "orders", timeout: int = 3) -> psycopg.Connection:
    """The lab's superuser on ``port`` (a node, or HAProxy's write endpoint), autocommit."""
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        dbname=dbname,
        user=state["db"]["superuser"],
        password=state["db"]["superuser_password"],
        autocommit=True,
        connect_timeout=timeout,
    )


class AckedWriter(threading.Thread):
    """Insert through the load balancer until stopped; remember every acknowledged row id."""

    def __init__(self, state: dict, pause: float = 0.005):
        super().__init__(name="acked-writer", daemon=True)
        self.state = state
        self.pause = pause
        self.acked: list[int] = []
        self.failed = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        conn = None
        sequence = 0
        while not self.stopping.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect(self.state, self.state["ports"]["lb_db"], timeout=1)
                    # a write that waits for a standby forever is not acknowledged: give up after 5 s
                    conn.execute("SET statement_timeout = 5000")
                sequence += 1
                row = conn.execute(
                    "INSERT INTO orders (customer, amount_cents) VALUES (%s, %s) RETURNING id", (WRITER, sequence)
                ).fetchone()[0]
                with self.lock:
                    self.acked.append(row)
            except psycopg.Error:
                self.failed += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def snapshot(self) -> list[int]:
        with self.lock:
            return list(self.acked)

    def wait_for_more(self, count: int = 20, timeout: float = 30) -> None:
        """Wait until ``count`` more writes were acknowledged (the service takes writes again)."""
        wanted = len(self.snapshot()) + count
        deadline = time.monotonic() + timeout
        while len(self.snapshot()) < wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"the writer got no acknowledged write for {timeout} s ({self.failed} failures)")
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=15)


def missing_rows(state: dict, primary: str, ids: list[int]) -> list[int]:
    """The acknowledged ids that are not on ``primary``."""
    with connect(state, state["ports"][primary]) as conn:
        present = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM orders WHERE customer = %s AND id = ANY(%s)", (WRITER, ids)
            ).fetchall()
        }
    return sorted(set(ids) - present)


def replication_from(state: dict, standby: str, primary: str, timeout: float = 30) -> dict:
    """Prove ``standby`` replicates from ``primary``: sender port, listed by it, a fresh row seen."""
    with connect(state, state["ports"][primary]) as conn:
        row = conn.execute(
            "INSERT INTO orders (customer, amount_cents) VALUES ('cycle-probe', 1) RETURNING id"
        ).fetchone()[0]
    deadline = time.monotonic() + timeout
    while True:
        with connect(state, state["ports"][standby]) as conn:
            receiver = conn.execute("SELECT status, sender_port FROM pg_stat_wal_receiver").fetchone()
            seen = conn.execute("SELECT count(*) FROM orders WHERE id = %s", (row,)).fetchone()[0]
        with connect(state, state["ports"][primary], "postgres") as conn:
            listed = conn.execute(
                "SELECT count(*), string_agg(sync_state, ',') FROM pg_stat_replication WHERE state = 'streaming'"
            ).fetchone()
        facts = {"receiver": receiver, "row_seen": seen == 1, "listed": listed[0], "sync_state": listed[1]}
        if receiver == ("streaming", state["ports"][primary]) and seen == 1 and listed[0] >= 1:
            return facts
        if time.monotonic() > deadline:
            raise AssertionError(f"{standby} does not replicate from {primary}: {facts}")
        time.sleep(0.1)


def run_playbook(home: Path, inventory: Path, workdir: Path, ident: str, extravars: dict | None = None):
    import ansible_runner

    # a private data dir per run: ansible-runner keeps env/extravars between runs of the same dir
    workdir = workdir / ident
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "MTTR_HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ANSIBLE_NOCOLOR": "1",
    }
    runner = ansible_runner.run(
        private_data_dir=str(workdir),
        playbook="mttr.recovery.failover",
        inventory=str(inventory),
        envvars=env,
        extravars=extravars or {},
        quiet=True,
        ident=ident,
    )
    if runner.status != "successful" or runner.rc != 0:
        raise AssertionError(f"{ident}: the failover playbook ended {runner.status}:\n{runner.stdout.read()[-3000:]}")
    return runner


def failover_result(runner) -> dict:
    for event in runner.events:
        data = event.get("event_data", {})
        if event["event"] == "runner_on_ok" and data.get("task", "").startswith("Drain, fence, promote"):
            return data["res"]
    raise AssertionError("no failover result in the run's events")


def run_cycles(
    home: Path,
    inventory: Path,
    workdir: Path,
    cycles: int,
    report: Callable[[dict], None] = lambda _record: None,
) -> list[dict]:
    """Run ``cycles`` rounds of primary-down -> failover -> rejoin with the writer going; one record each."""
    lab = Lab.open(home)
    state = lab.cfg.state
    writer = AckedWriter(state)
    writer.start()
    records: list[dict] = []
    lost_before = 0
    try:
        writer.wait_for_more()
        for number in range(1, cycles + 1):
            old = lab.primary()
            if old is None:
                raise AssertionError("no primary answers before the cycle")
            started = time.monotonic()
            lab.break_("primary-down")
            failover = failover_result(run_playbook(home, inventory, workdir, f"failover-{number}"))
            failover_s = time.monotonic() - started
            run_playbook(home, inventory, workdir, f"rejoin-{number}", {"failover_rejoin": True})
            writer.wait_for_more()
            new = lab.primary()
            standby = next(name for name in lab.nodes if name != new.name)
            acked = writer.snapshot()
            lost = missing_rows(state, new.name, acked)
            record = {
                "cycle": number,
                "killed": old.name,
                "promoted": new.name,
                "acknowledged": len(acked),
                "lost": len(lost) - lost_before,
                "lost_total": len(lost),
                "lost_ids": lost[:20],
                "exposure": failover.get("exposure"),
                "failover_s": round(failover_s, 3),
                "replication": replication_from(state, standby, new.name),
            }
            lost_before = len(lost)
            records.append(record)
            report(record)
    finally:
        writer.stop()
    return records
