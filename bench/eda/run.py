"""Benchmark: from an Alertmanager webhook to the recovery, through ansible-rulebook (Event-Driven Ansible).

A lab of its own. Each round: ansible-rulebook is started with the collection's rulebook
(``mttr.recovery.recover_on_alert``, source ``mttr.recovery.alertmanager``) and waited for until its source
answers ``/healthz`` (outside the measure: a fresh ansible-rulebook per round, because the rulebook throttles
one recovery per service per 60 s); then ``mttr lab break primary-down`` and, at t0, a real-shaped Alertmanager
v4 firing payload POSTed to the source (``startsAt`` = the break), while a writer tries an INSERT through
HAProxy every 50 ms. Figures from t0 (the alert received):
- **acknowledged**: the incident's triage (its ``plan`` entry: the playbook started by ansible-rulebook has
  opened the incident and planned);
- **first write**: the writer's first committed INSERT after its first failed one (on the new primary);
- **resolved**: the incident's ``resolved_at`` (validated and resolved).
Then ansible-rulebook is stopped and the old primary rejoined, outside the measure. For scale: a real
Prometheus + Alertmanager tuned hard deliver the webhook ~4.7 s after the break; that is not in these figures.

    .venv/bin/python bench/eda/run.py [--rounds 5] [--port-base 29900] [--json bench/eda/results/results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ansible_collections.mttr.recovery.bench.watch.run import BIN, REPO, Writer, env, mttr, rejoin, stamp
from ansible_collections.mttr.recovery.tests.support import alertmanager

TOKEN = "bench-token"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_rulebook(home, scratch, port):
    variables = scratch / "eda-vars.json"
    variables.write_text(
        json.dumps(
            {"mttr_eda_port": port, "mttr_eda_token": TOKEN, "mttr_eda_catalog": str(REPO / "inventories" / "lab")}
        )
    )
    environment = dict(env(home), ANSIBLE_CALLBACKS_ENABLED="mttr.recovery.timeline", ANSIBLE_NOCOLOR="1")
    log = open(scratch / "ansible-rulebook.log", "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            str(BIN / "ansible-rulebook"),
            *("-r", "mttr.recovery.recover_on_alert", "-i", str(REPO / "inventories" / "lab"), "-e", str(variables)),
        ],
        cwd=scratch,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    while time.monotonic() - started < 120:
        if process.poll() is not None:
            raise RuntimeError((scratch / "ansible-rulebook.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process, log, round(time.monotonic() - started, 3)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("ansible-rulebook's source never listened")


def stop_rulebook(process, log):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port-base", type=int, default=29900)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mttr-bench-eda-", dir="/tmp"))
    home.chmod(0o755)
    scratch = Path(tempfile.mkdtemp(prefix="mttr-bench-eda-run-"))
    load_before = os.getloadavg()
    rounds = []
    try:
        up = mttr(home, "lab", "up", "--port-base", str(args.port_base))
        assert up.returncode == 0, up.stdout + up.stderr
        from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
        from mttr.lab.core import Lab

        state = Lab.open(home).cfg.state
        for number in range(1, args.rounds + 1):
            port = free_port()
            process, log, listening_s = start_rulebook(home, scratch, port)
            try:
                writer = Writer(state)
                writer.start()
                time.sleep(0.5)
                broke_at = datetime.datetime.now(datetime.UTC)
                broke = mttr(home, "lab", "break", "primary-down")
                assert broke.returncode == 0, broke.stdout + broke.stderr
                firing = alertmanager.payload(alertmanager.alert(starts_at=broke_at, failure_mode="primary-down"))
                t0 = time.time()
                status, body = alertmanager.post(f"http://127.0.0.1:{port}/", firing, token=TOKEN)
                assert status == 200, body
                record = None
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    with IncidentStore(str(home / "incidents.sqlite")) as store:
                        found = [i for i in store.list() if i["opened_at"] >= broke_at.isoformat()[:19]]
                        if found and found[-1]["resolved_at"]:
                            record = found[-1]
                            plan = next(e for e in store.timeline(record["id"]) if e["kind"] == "plan")
                            break
                    time.sleep(0.1)
                writer.stopping.set()
                writer.join(timeout=5)
                if record is None:
                    raise RuntimeError(
                        "no resolved incident: " + (scratch / "ansible-rulebook.log").read_text()[-3000:]
                    )
            finally:
                stop_rulebook(process, log)
            first_write = writer.first_write_after_outage(t0)
            figures = {
                "incident": record["id"],
                "rulebook_listening_s": listening_s,
                "acknowledged_s": round(stamp(plan["time"]) - t0, 3),
                "first_write_s": round(first_write - t0, 3) if first_write else None,
                "resolved_s": round(stamp(record["resolved_at"]) - t0, 3),
            }
            rounds.append(figures)
            print(f"round {number}: {figures}", flush=True)
            rejoin(home)
    finally:
        mttr(home, "lab", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    keys = [key for key in rounds[0] if key.endswith("_s")]
    summary = {key: round(statistics.median(r[key] for r in rounds if r[key] is not None), 3) for key in keys}
    print(json.dumps({"median_s": summary}, indent=2))
    if args.json:
        record = {
            "benchmark": "alert received -> recovery through ansible-rulebook, primary-down, lab",
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
