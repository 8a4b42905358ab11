"""Lost acknowledged writes per failover cycle: primary-down -> failover -> rejoin, N times per mode.

For each replication mode (``sync``, ``async``) a fresh lab is started (``mttr lab up --replication
MODE`` in a new home under /tmp), a writer inserts through HAProxy without pause and keeps every
acknowledged row id, and ``mttr.lab.cycles.run_cycles`` kills the current primary, runs the failover
playbook and the rejoin through ansible-runner, and checks every acknowledged row is on the new
primary and the other node streams from it (the integration test runs the same code with N = 3).

    .venv/bin/python bench/failover/cycles.py [--cycles 20] [--modes sync async] [--port-base N]
        [--json bench/failover/results/results-cycles.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.common import loadavg, log, machine_facts, spread
from mttr.lab.config import PORT_OFFSETS, port_in_use
from mttr.lab.cycles import run_cycles

REPO = Path(__file__).resolve().parents[2]
MTTR = Path(sys.executable).parent / "mttr"


def free_base(start: int) -> int:
    for base in range(start, 32000, 100):
        if not any(port_in_use(base + offset) for offset in PORT_OFFSETS.values()):
            return base
    raise SystemExit(f"no free port range from {start}")


def lab(home: Path, *args: str) -> None:
    proc = subprocess.run([str(MTTR), "lab", "--home", str(home), *args], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"mttr lab {' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def run_mode(mode: str, cycles: int, port_base: int) -> dict:
    home = Path(tempfile.mkdtemp(dir="/tmp", prefix=f"mttr-bench-cycles-{mode}-"))
    home.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="mttr-bench-cycles-runner-"))
    try:
        lab(home, "up", "--port-base", str(free_base(port_base)), "--replication", mode)
        started = time.monotonic()

        def report(record: dict) -> None:
            log(
                f"{mode} cycle {record['cycle']}/{cycles}: killed {record['killed']}, promoted {record['promoted']} "
                f"in {record['failover_s']:.2f} s, {record['acknowledged']} acknowledged so far, "
                f"{record['lost']} lost; exposure {record['exposure']['unreceived_bytes']} B"
            )

        records = run_cycles(home, REPO / "inventories" / "lab", work, cycles, report)
        return {
            "mode": mode,
            "cycles": len(records),
            "acknowledged": records[-1]["acknowledged"] if records else 0,
            "lost_total": sum(record["lost"] for record in records),
            "lost_per_cycle": [record["lost"] for record in records],
            "exposure_bytes_per_cycle": [record["exposure"]["unreceived_bytes"] for record in records],
            "failover_s": spread([record["failover_s"] for record in records]),
            "wall_s": round(time.monotonic() - started, 1),
            "records": records,
        }
    finally:
        lab(home, "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--modes", nargs="+", choices=["sync", "async"], default=["sync", "async"])
    parser.add_argument("--port-base", type=int, default=23000)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    results = {"machine": machine_facts(cycles=args.cycles), "modes": []}
    for mode in args.modes:
        results["modes"].append(run_mode(mode, args.cycles, args.port_base))
    results["machine"]["loadavg_end"] = loadavg()
    for summary in results["modes"]:
        log(
            f"{summary['mode']}: {summary['cycles']} cycles, {summary['acknowledged']} writes acknowledged, "
            f"{summary['lost_total']} lost (per cycle {summary['lost_per_cycle']}), failover median "
            f"{summary['failover_s']['median']} s"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")
    return 0 if all(summary["mode"] != "sync" or summary["lost_total"] == 0 for summary in results["modes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
