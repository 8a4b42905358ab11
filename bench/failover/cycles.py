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
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.common import loadavg, log, machine_facts, spread, write_results
from ansible_collections.mttr.recovery.bench.failover.lab import BenchLab, free_port_base
from mttr.lab.cycles import run_cycles

REPO = Path(__file__).resolve().parents[2]


def run_mode(mode: str, cycles: int, port_base: int) -> dict:
    lab = BenchLab(free_port_base(port_base), prefix=f"mttr-bench-cycles-{mode}-")
    work = Path(tempfile.mkdtemp(prefix="mttr-bench-cycles-runner-"))
    try:
        lab.up(replication=mode)
        started = time.monotonic()

        def report(record: dict) -> None:
            log(
                f"{mode} cycle {record['cycle']}/{cycles}: killed {record['killed']}, promoted {record['promoted']} "
                f"in {record['failover_s']:.2f} s, {record['acknowledged']} acknowledged so far, "
                f"{record['lost']} lost; exposure {record['exposure']['unreceived_bytes']} B"
            )

        records = run_cycles(lab.home, REPO / "inventories" / "lab", work, cycles, report)
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
        lab.down()
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
        try:
            results["modes"].append(run_mode(mode, args.cycles, args.port_base))
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
    results["machine"]["loadavg_end"] = loadavg()
    for summary in results["modes"]:
        log(
            f"{summary['mode']}: {summary['cycles']} cycles, {summary['acknowledged']} writes acknowledged, "
            f"{summary['lost_total']} lost (per cycle {summary['lost_per_cycle']}), failover median "
            f"{summary['failover_s']['median']} s"
        )
    if args.json:
        write_results(args.json, results, indent=2)
    return 0 if all(summary["mode"] != "sync" or summary["lost_total"] == 0 for summary in results["modes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
