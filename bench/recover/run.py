"""Benchmark: ``mttr recover --service orders`` for ``primary-down`` on a lab of its own.

Each round: break ``primary-down`` (an immediate shutdown of the primary), run ``mttr recover --service orders``
(no failure mode given: triage tells it), and take from the command's start
- to the incident's ``resolved_at`` (validated and resolved, from the incident record),
- to the command's exit (the review written, the summary printed),
and the per-phase split from ansible-runner's job events of that run (the start of each play: triage, the
failover step, validation, close; before the first event: the CLI and ansible-playbook starting). Then the
old primary is rejoined as a standby (the failover playbook's rejoin), outside the measure.

    .venv/bin/python bench/recover/run.py [--rounds 5] [--port-base 29500] [--json bench/recover/results/results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MTTR = str(BIN / "mttr")
PHASES = (("Triage", "triage"), ("Recover, step 1", "failover step"), ("Validate", "validate"), ("Close", "close"))


def mttr(home, *args, timeout=300):
    env = dict(os.environ, MTTR_HOME=str(home), PATH=f"{BIN}:{os.environ['PATH']}")
    return subprocess.run([MTTR, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def events(artifacts: Path) -> list[dict]:
    found = []
    for path in sorted((artifacts / "job_events").glob("*.json")):
        with path.open() as handle:
            found.append(json.load(handle))
    return sorted(found, key=lambda event: event["counter"])


def when(event) -> float:
    return datetime.datetime.fromisoformat(event["created"]).replace(tzinfo=datetime.UTC).timestamp()


def phases(artifacts: Path, started: float, ended: float) -> dict:
    found = events(artifacts)
    starts = [("startup", started)]
    for event in found:
        if event["event"] == "playbook_on_play_start":
            name = event["event_data"].get("play")
            label = dict(PHASES).get(name)
            if label and label not in dict(starts):
                starts.append((label, when(event)))
    last = max(when(event) for event in found)
    starts.append(("finish", last))
    split = {name: round(starts[i + 1][1] - start, 3) for i, (name, start) in enumerate(starts[:-1])}
    split["exit"] = round(ended - last, 3)
    return split


def one_round(home: Path) -> dict:
    from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore

    broke = mttr(home, "lab", "break", "primary-down")
    assert broke.returncode == 0, broke.stdout + broke.stderr
    started = time.time()
    result = mttr(home, "recover", "--service", "orders")
    ended = time.time()
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    with IncidentStore(str(home / "incidents.sqlite")) as store:
        record = store.list()[-1]
    resolved = datetime.datetime.fromisoformat(record["resolved_at"]).timestamp()
    artifacts = sorted((home / "incidents" / record["id"] / "artifacts").iterdir())[-1]
    return {
        "incident": record["id"],
        "to_resolved_s": round(resolved - started, 3),
        "to_exit_s": round(ended - started, 3),
        "phases_s": phases(artifacts, started, ended),
    }


def rejoin(home: Path) -> None:
    env = dict(os.environ, MTTR_HOME=str(home), PATH=f"{BIN}:{os.environ['PATH']}")
    result = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(REPO / "inventories" / "lab"),
            "mttr.recovery.failover",
            "-e",
            "failover_rejoin=true",
        ],
        env=env,
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
    parser.add_argument("--port-base", type=int, default=29500)
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mttr-bench-recover-", dir="/tmp"))
    home.chmod(0o755)
    load_before = os.getloadavg()
    rounds = []
    try:
        up = mttr(home, "lab", "up", "--port-base", str(args.port_base))
        assert up.returncode == 0, up.stdout + up.stderr
        for number in range(1, args.rounds + 1):
            figures = one_round(home)
            rounds.append(figures)
            print(
                f"round {number}: resolved after {figures['to_resolved_s']:.2f} s, "
                f"exit after {figures['to_exit_s']:.2f} s  {figures['phases_s']}",
                flush=True,
            )
            rejoin(home)
    finally:
        mttr(home, "lab", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
    names = list(rounds[0]["phases_s"])
    summary = {
        "rounds": len(rounds),
        "median_to_resolved_s": round(statistics.median(r["to_resolved_s"] for r in rounds), 3),
        "median_to_exit_s": round(statistics.median(r["to_exit_s"] for r in rounds), 3),
        "median_phases_s": {name: round(statistics.median(r["phases_s"][name] for r in rounds), 3) for name in names},
    }
    print(json.dumps(summary, indent=2))
    record = {
        "benchmark": "mttr recover --service orders, primary-down, lab",
        "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "summary": summary,
        "rounds": rounds,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
