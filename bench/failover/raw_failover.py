"""The raw failover: the failover's operations as a plain Python script in a process of its own, for the
failover benchmark's ``raw*`` variants (what the playbook does, without Ansible).

``python raw_failover.py`` reads its settings as one JSON line on stdin (the lab's nodes, HAProxy's
runtime API, the SQL of the benchmark's writes), then: ``standby.signal`` into the old primary's data
directory, ``pg_promote()`` on the standby, ``set server <backend>/<new> state ready; set server
<backend>/<old> state maint`` on HAProxy's runtime API, and its own first write through HAProxy. It
prints one JSON line: the epoch time of each step, and what PostgreSQL and HAProxy answered. It imports
only what those steps need, so its start-up is Python's and psycopg's.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from pathlib import Path


def main():
    """Run the steps; print a JSON line of epoch timestamps per step."""
    marks = {"process_start": time.time()}
    cfg = json.loads(sys.stdin.readline())
    import psycopg  # part of the start-up the benchmark measures (python_start_and_imports)

    marks["imports_done"] = time.time()
    signal_path = Path(cfg["old_data"]) / "standby.signal"
    signal_path.touch()
    if cfg.get("run_as"):
        shutil.chown(signal_path, cfg["run_as"], cfg["run_as"])
        signal_path.chmod(0o600)
    marks["standby_signal_written"] = time.time()
    with psycopg.connect(
        host="127.0.0.1",
        port=cfg["new_port"],
        dbname="postgres",
        user=cfg["user"],
        password=cfg["password"],
        autocommit=True,
        connect_timeout=3,
    ) as conn:
        marks["new_connected"] = time.time()
        if cfg.get("reload_before_promote"):
            # what PostgresFailover.promote() does first: lift a read-only setting, reload
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            conn.execute("SELECT pg_reload_conf()")
        kicks = 0
        if cfg.get("kick"):
            # Promote without waiting, poll every 10 ms, and while it is still in recovery wake the
            # startup process every 100 ms with a reload (its SIGHUP handler sets the recovery latch),
            # so a promotion noticed just before a wal_retrieve_retry_interval sleep is not held by it.
            promoted = conn.execute("SELECT pg_promote(false)").fetchone()[0]
            kicked = time.monotonic()
            while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                time.sleep(0.01)
                if time.monotonic() - kicked >= 0.1:
                    conn.execute("SELECT pg_reload_conf()")
                    kicked = time.monotonic()
                    kicks += 1
        else:
            promoted = conn.execute("SELECT pg_promote(true, 60)").fetchone()[0]
    marks["promoted"] = time.time()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(cfg["admin_socket"])
        backend = cfg["backend"]
        commands = f"set server {backend}/{cfg['new']} state ready; set server {backend}/{cfg['old']} state maint"
        sock.sendall(commands.encode() + b"\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    marks["haproxy_switched"] = time.time()
    port = None
    for attempt in range(200):
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=cfg["lb_port"],
                dbname=cfg["dbname"],
                user=cfg["user"],
                password=cfg["password"],
                autocommit=True,
                connect_timeout=2,
            ) as conn:
                port = conn.execute(cfg["insert_sql"], (f"bench-raw-{attempt}",)).fetchone()[0]
            break
        except psycopg.Error:
            time.sleep(0.01)
    marks["own_first_write"] = time.time()
    print(
        json.dumps(
            {"marks": marks, "promoted": promoted, "kicks": kicks, "haproxy": answer.decode().strip(), "port": port}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
