"""The failover benchmark's writer, a process of its own: from before the break until after the failover,
every 20 ms it starts an INSERT through HAProxy's write endpoint on a new connection, without waiting for
the previous one (an attempt can hang in HAProxy's connect retries while the dead primary is not yet
marked DOWN), and records its start, its end and the server that took it (``inet_server_port()``), or
its error. After the first write on another server it slows to one attempt every 200 ms.

``python writer.py`` reads its connection settings as one JSON line on stdin, prints ``ready`` after its
first write, and at the next stdin line stops and prints its records as one JSON line. ``Writer`` is the
benchmark's side of it; ``analyse_writes`` turns its records into the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.failover.timeline import rel

WRITE_INTERVAL_S = 0.02
WRITE_INTERVAL_AFTER_S = 0.2
WRITE_CONNECT_TIMEOUT_S = 2
INSERT_SQL = "INSERT INTO orders (customer, amount_cents) VALUES (%s, 1) RETURNING inet_server_port()"


def short_error(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "failed: " in text:
        text = text.rsplit("failed: ", 1)[1]
    return text[:90]


async def writer_loop(cfg):
    import psycopg

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_stdin():
        sys.stdin.readline()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_stdin, daemon=True).start()
    records = []
    inflight = set()
    first = {"port": None, "moved": False}

    async def attempt(seq):
        started = time.time()
        try:
            conn = await psycopg.AsyncConnection.connect(
                host=cfg["host"],
                port=cfg["port"],
                dbname=cfg["dbname"],
                user=cfg["user"],
                password=cfg["password"],
                connect_timeout=WRITE_CONNECT_TIMEOUT_S,
                autocommit=True,
            )
            try:
                cursor = await conn.execute(INSERT_SQL, (f"bench-failover-{seq}",))
                row = await cursor.fetchone()
            finally:
                await conn.close()
            port = int(row[0])
            records.append([started, time.time(), port, None])
            if first["port"] is None:
                first["port"] = port
                print("ready", flush=True)
            elif port != first["port"]:
                first["moved"] = True
        except Exception as exc:  # any failure is a data point: the write endpoint refused it
            records.append([started, time.time(), None, short_error(exc)])

    seq = 0
    next_at = time.monotonic()
    while not stop.is_set():
        if len(inflight) < cfg.get("max_inflight", 200):
            seq += 1
            task = asyncio.create_task(attempt(seq))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        next_at += WRITE_INTERVAL_AFTER_S if first["moved"] else WRITE_INTERVAL_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - time.monotonic()))
    if inflight:
        await asyncio.wait(inflight, timeout=WRITE_CONNECT_TIMEOUT_S + 1)
    print(json.dumps({"records": records, "attempts": seq}), flush=True)


def writer_main():
    cfg = json.loads(sys.stdin.readline())
    asyncio.run(writer_loop(cfg))


class Writer:
    """The writer process: started before the break, stopped after the failover; returns its records."""

    def __init__(self, cfg):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.proc.stdin.write(json.dumps(cfg) + "\n")
        self.proc.stdin.flush()

    def wait_ready(self, timeout=15):
        readable = select.select([self.proc.stdout], [], [], timeout)[0]
        if not readable or self.proc.stdout.readline().strip() != "ready":
            self.kill()
            raise RuntimeError("the writer made no write through HAProxy before the break")

    def stop(self):
        out = self.proc.communicate("stop\n", timeout=WRITE_CONNECT_TIMEOUT_S + 20)[0]
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()


def analyse_writes(data, break_end, t0, old_port):
    records = sorted(data["records"], key=lambda rec: rec[1])
    after = [rec for rec in records if rec[1] > break_end]
    successes = [rec for rec in after if rec[2] is not None]
    first = successes[0] if successes else None
    errors = {}
    for rec in after:
        if rec[2] is None and (first is None or rec[1] < first[1]):
            errors[rec[3]] = errors.get(rec[3], 0) + 1
    return {
        "attempts": data["attempts"],
        "first_write_s": rel(first[1], t0) if first else None,
        "first_write_attempt_started_s": rel(first[0], t0) if first else None,
        "first_write_port": first[2] if first else None,
        "first_write_on_old_primary": bool(first and first[2] == old_port),
        "writes_on_old_primary_after_break": sum(1 for rec in successes if rec[2] == old_port),
        "failures_after_first_write": sum(1 for rec in after if rec[2] is None and first and rec[0] > first[1]),
        "last_write_before_break_s": rel(
            max((rec[1] for rec in records if rec[2] and rec[1] <= break_end), default=None), t0
        ),
        "errors_before_first_write": dict(sorted(errors.items(), key=lambda item: -item[1])[:4]),
    }


if __name__ == "__main__":
    writer_main()
