"""Benchmark: from a break to detection, first write and validated + resolved, through ``mttr watch``.

A lab of its own and a watcher (``mttr watch --service orders --interval 0.5 --failures 2 --hold 0``) running
throughout. Each round: ``mttr lab break primary-down`` at t0, while a writer tries an INSERT through HAProxy's
write endpoint every 50 ms; the round ends when the watcher logs the recovery's end. Figures per round, from t0:
- **detected**: the incident's ``opened_at`` (the watcher's first failed probe);
- **first write**: the writer's first committed INSERT after its first failed one after t0 (on the promoted
  standby);
- **resolved**: the incident's ``resolved_at`` (validated and resolved);
and the watcher's own split: detection to its decision (the N failed rounds), decision to the recovery's start.
Then the old primary is rejoined (outside the measure) and the watcher sees a healthy lab again.

    .venv/bin/python bench/watch/run.py [--rounds 5] [--port-base 29700] [--json bench/watch/results/results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MTTR = str(BIN / "mttr")


def env(home):
    return dict(os.environ, MTTR_HOME=str(home), PATH=f"{BIN}:{os.environ['PATH']}")


def mttr(home, *args, timeout=300):
    return subprocess.run([MTTR, *args], env=env(home), capture_output=True, text=True, timeout=timeout, check=False)


def stamp(text):
    return datetime.datetime.fromisoformat(text).timestamp()


class Writer(threading.Thread):
    """INSERTs through HAProxy's write endpoint every 50 ms; keeps the time of each committed and failed one."""

    def __init__(self, state):
        super().__init__(daemon=True)
        self.state = state
        self.committed = []
        self.failed = []
        self.stopping = threading.Event()

    def first_write_after_outage(self, t0):
        """The first commit after the first failed write after t0 (the new primary's), or None."""
        outage = next((t for t in self.failed if t > t0), None)
        return None if outage is None else next((t for t in self.committed if t > outage), None)

    def run(self):
        import psycopg

        db = self.state["db"]
        while not self.stopping.is_set():
            try:
                with psycopg.connect(
                    host="127.0.0.1",
                    port=self.state["ports"]["lb_db"],
                    dbname=db["name"],
                    user=db["superuser"],
                    password=db["superuser_password"],
                    connect_timeout=1,
                    autocommit=True,
                ) as conn:
                    conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('bench-watch', 1)")
                    self.committed.append(time.time())
            except psycopg.Error:
                self.failed.append(time.time())
            time.sleep(0.05)


def reader(process, lines):
    for line in process.stdout:
        lines.put((time.time(), line.rstrip("\n")))


def wait_line(lines, text, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            when, line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if text in line:
            return when, line
    raise RuntimeError(f"the watcher never said {text!r}")


def rejoin(home):
    result = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            *("-i", str(REPO / "inventories" / "lab"), "mttr.recovery.failover", "-e", "failover_rejoin=true"),
        ],
        env=env(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:] + result.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port-base", type=int, default=29700)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mttr-bench-watch-", dir="/tmp"))
    home.chmod(0o755)
    load_before = os.getloadavg()
    rounds, watcher = [], None
    try:
        up = mttr(home, "lab", "up", "--port-base", str(args.port_base))
        assert up.returncode == 0, up.stdout + up.stderr
        sys.path.insert(0, str(REPO / "src"))
        from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
        from mttr.lab.core import Lab

        state = Lab.open(home).cfg.state
        watcher = subprocess.Popen(
            [MTTR, "watch", "--service", "orders", "--interval", "0.5", "--failures", "2", "--hold", "0"],
            env=env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = queue.Queue()
        threading.Thread(target=reader, args=(watcher, lines), daemon=True).start()
        wait_line(lines, "watching orders")
        for number in range(1, args.rounds + 1):
            time.sleep(2)  # healthy rounds first
            writer = Writer(state)
            writer.start()
            time.sleep(0.5)
            t0 = time.time()
            broke = mttr(home, "lab", "break", "primary-down")
            assert broke.returncode == 0, broke.stdout + broke.stderr
            decided_at, _decided = wait_line(lines, "recovering (mttr recover)")
            ended_at, line = wait_line(lines, "orders: recovery")
            writer.stopping.set()
            writer.join(timeout=5)
            if "validated" not in line:
                raise RuntimeError(line)
            with IncidentStore(str(home / "incidents.sqlite")) as store:
                record = store.list()[-1]
                plan = next(e for e in store.timeline(record["id"]) if e["kind"] == "plan")
            first_write = writer.first_write_after_outage(t0)
            figures = {
                "incident": record["id"],
                "detected_s": round(stamp(record["opened_at"]) - t0, 3),
                "decided_s": round(decided_at - t0, 3),
                "triaged_s": round(stamp(plan["time"]) - t0, 3),
                "first_write_s": round(first_write - t0, 3) if first_write else None,
                "resolved_s": round(stamp(record["resolved_at"]) - t0, 3),
                "watcher_logged_end_s": round(ended_at - t0, 3),
            }
            rounds.append(figures)
            print(f"round {number}: {figures}", flush=True)
            rejoin(home)
    finally:
        if watcher is not None:
            watcher.send_signal(signal.SIGINT)
            try:
                watcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                watcher.kill()
        mttr(home, "lab", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
    keys = [key for key in rounds[0] if key.endswith("_s")]
    summary = {key: round(statistics.median(r[key] for r in rounds if r[key] is not None), 3) for key in keys}
    print(json.dumps({"median_s": summary}, indent=2))
    if args.json:
        record = {
            "benchmark": "mttr watch --interval 0.5 --failures 2, primary-down, lab",
            "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_before": load_before,
                "load_after": os.getloadavg(),
            },
            "median_s": summary,
            "rounds": rounds,
        }
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
