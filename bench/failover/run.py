"""Failover benchmark: how fast does ``playbooks/failover.yml`` bring writes back after the primary dies?

Every run starts a fresh lab (``mttr lab up`` in a new home under /tmp), starts a WRITER process
(``writer.py``) that tries ``INSERT INTO orders ... RETURNING inet_server_port()`` through HAProxy's write
endpoint (127.0.0.1:N+10, database orders, the lab's superuser) every 20 ms, each attempt on a new
connection and without waiting for the previous one (an attempt can hang in HAProxy's connect retries
while the dead primary is not yet marked DOWN), waits for a first write on pg1, breaks the lab
(``mttr lab break primary-down``) and, as soon as that returns, starts the failover (``trial.py``):

- ``runner-<strategy>``: ``ansible-playbook -i inventories/lab playbooks/failover.yml`` through
  ansible-runner; task timeline and module results from its job events;
- ``cli-<strategy>``: the same command as a plain subprocess (default stdout callback), each output
  line timestamped as it arrives; module timings parsed from the last task's report;
- ``lean-<strategy>``: the lean prototype playbook (``playbooks/lean.yml``: the role's module calls of
  before the one-call failover, without the role), as a plain subprocess;
- ``raw``: the same operations as a plain Python script in a process of its own (``raw_failover.py``):
  ``standby.signal`` in the old data directory, ``SELECT pg_promote()`` on pg2, HAProxy runtime API
  ``set server db_primary/pg2 state ready; set server db_primary/pg1 state maint``, then its own first
  write through HAProxy; ``raw-late*`` start it 3 s after the break, ``-reload`` reloads the configuration
  before ``pg_promote()``, ``-kick`` wakes the promotion with a reload every 100 ms.

``<strategy>`` is ``linear`` (ansible-core's default) or ``mitogen`` (``mitogen_linear`` from the
mitogen package, when installed: ``ANSIBLE_STRATEGY_PLUGINS`` + ``ANSIBLE_STRATEGY``).

Measured from the moment the failover starts (t0: just before ansible-runner / the subprocess is
started, right after the break returned):

- ``first_write_s``: the writer's first INSERT committed after the break (its end time), and the
  server that took it (``inet_server_port()``);
- ``validated_s``: the end of the "Validate the service through the load balancer" task;
- ``playbook_s``: ansible-playbook finished (rc 0);
- the module-reported timings (fence_s, promote_s, promote_to_first_write_s, total_s; switch_s,
  until_up_s; the validation's elapsed_s) and, from pg2's log, promote request -> ready.

Rounds are interleaved (every variant once per round, each on its own fresh lab), so the machine's
load hits all variants alike. Each round also runs baselines (``baselines.py``) on a healthy lab:
Python start, ``ansible-playbook --version``, a no-op playbook against the same inventory (runner and
CLI, linear and mitogen, default and minimal stdout callback), 10 debug tasks, 5 ping tasks and 3 debug
tasks templating the role's expressions (lab lookup, hostvars); their playbooks are in ``playbooks/``.

    .venv/bin/python bench/failover/run.py [--runs N] [--strategy linear|mitogen|both]
        [--driver runner|cli|both] [--no-raw] [--no-baseline] [--port-base N] [--json [PATH]] [--keep]
    .venv/bin/python bench/failover/run.py --report bench/failover/results/results.json

Every lab it starts is taken down (``down --purge``) and its home removed, also on errors and Ctrl-C.
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

from ansible_collections.mttr.recovery.bench.common import (
    interrupt_on_signals,
    loadavg,
    log,
    package_version,
    read_results,
    tool_version,
    venv_on_path,
    write_results,
)
from ansible_collections.mttr.recovery.bench.common import machine_facts as common_machine_facts
from ansible_collections.mttr.recovery.bench.failover.baselines import baselines
from ansible_collections.mttr.recovery.bench.failover.drivers import mitogen_strategy_dir
from ansible_collections.mttr.recovery.bench.failover.lab import BenchLab, cleanup_labs, free_port_base
from ansible_collections.mttr.recovery.bench.failover.report import (
    TARGET_FIRST_WRITE_S,
    TARGET_VALIDATED_S,
    print_report,
    summarize,
)
from ansible_collections.mttr.recovery.bench.failover.trial import RAW_LATE_DELAY_S, failover_run
from ansible_collections.mttr.recovery.bench.failover.writer import (
    WRITE_CONNECT_TIMEOUT_S,
    WRITE_INTERVAL_AFTER_S,
    WRITE_INTERVAL_S,
)
from mttr.lab.config import find_pg_bin

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "results.json"


def machine_facts():
    return common_machine_facts(
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        psycopg=package_version("psycopg"),
        mitogen=package_version("mitogen"),
        haproxy=tool_version(["haproxy", "-v"]),
        postgres=tool_version([Path(find_pg_bin()) / "postgres", "--version"]),
        mitogen_strategy_dir=mitogen_strategy_dir(),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds; each runs every variant once (default 5)")
    parser.add_argument("--strategy", choices=["linear", "mitogen", "both"], default="both")
    parser.add_argument("--driver", choices=["runner", "cli", "both"], default="both")
    parser.add_argument("--no-raw", action="store_true", help="skip the plain-Python failovers")
    parser.add_argument("--no-lean", action="store_true", help="skip the lean prototype playbook")
    parser.add_argument(
        "--variants", nargs="+", metavar="VARIANT", help="run only these variants (names as in the report)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the fixed-cost baselines")
    parser.add_argument("--port-base", type=int, default=26100, help="first port base to try (default 26100)")
    parser.add_argument(
        "--json", nargs="?", const=str(DEFAULT_JSON), help=f"write the results (default {DEFAULT_JSON})"
    )
    parser.add_argument(
        "--standby-retry-interval",
        metavar="VALUE",
        help="ALTER SYSTEM SET wal_retrieve_retry_interval on pg2 before the break (e.g. 5s, PostgreSQL's default)",
    )
    parser.add_argument("--keep", action="store_true", help="keep ansible-runner's artifacts directory")
    parser.add_argument("--report", metavar="PATH", help="print the report of a results file and exit")
    args = parser.parse_args(argv)
    if args.report:
        print_report(read_results(args.report))
        return 0

    strategies = ["linear", "mitogen"] if args.strategy == "both" else [args.strategy]
    if "mitogen" in strategies and mitogen_strategy_dir() is None:
        parser.error("mitogen is not installed: .venv/bin/pip install mitogen==0.3.54 (for the bench only)")
    drivers = ["runner", "cli"] if args.driver == "both" else [args.driver]
    variants = [f"{driver}-{strategy}" for strategy in strategies for driver in drivers]
    if not args.no_lean:
        variants += [f"lean-{strategy}" for strategy in strategies]
    if not args.no_raw:
        variants += ["raw", "raw-late", "raw-late-reload", "raw-late-reload-kick"]
    if args.variants:
        unknown = sorted(set(args.variants) - set(variants))
        if unknown:
            parser.error(f"unknown variants {unknown}: choose from {variants}")
        variants = [variant for variant in variants if variant in args.variants]
    venv_on_path()
    interrupt_on_signals()
    workdir = Path(tempfile.mkdtemp(prefix="mttr-bench-failover-runner-"))
    machine = machine_facts()
    runs = []
    base_runs = []
    started = time.time()
    try:
        for round_no in range(1, args.runs + 1):
            if not args.no_baseline:
                lab = BenchLab(free_port_base(args.port_base))
                try:
                    lab.up()
                    base = baselines(lab, strategies, workdir, f"r{round_no}")
                    base["loadavg_1m"] = loadavg()[0]
                    base_runs.append(base)
                    log(f"round {round_no} baselines: {json.dumps(base)}")
                finally:
                    lab.down()
            for variant in variants:
                port_base = free_port_base(args.port_base)
                try:
                    run = failover_run(
                        variant, port_base, workdir, f"r{round_no}-{variant}", args.standby_retry_interval
                    )
                except (RuntimeError, OSError, ValueError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
                    log(f"round {round_no} {variant}: ERROR {exc}")
                    runs.append({"variant": variant, "round": round_no, "rc": -1, "error": str(exc)[-2000:]})
                    continue
                run["round"] = round_no
                runs.append(run)
                log(
                    f"round {round_no} {variant}: rc {run['rc']} first write {run['first_write_s']} s "
                    f"(port {run['writes']['first_write_port']}), validated {run.get('validated_s')} s, "
                    f"end {run['playbook_s']} s, promote req->ready {run['pg2_log']['request_to_ready_s']} s, "
                    f"load {run['loadavg_1m']}"
                )
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        cleanup_labs()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_end"] = loadavg()
    machine["bench_wall_s"] = round(time.time() - started, 1)
    summary, base = summarize(runs, base_runs)
    results = {
        "machine": machine,
        "config": {
            "runs": args.runs,
            "variants": variants,
            "write_interval_s": WRITE_INTERVAL_S,
            "write_interval_after_move_s": WRITE_INTERVAL_AFTER_S,
            "write_connect_timeout_s": WRITE_CONNECT_TIMEOUT_S,
            "raw_late_delay_s": RAW_LATE_DELAY_S,
            "standby_retry_interval": args.standby_retry_interval or "1s (the lab's setting)",
            "targets": {"first_write_s": TARGET_FIRST_WRITE_S, "validated_s": TARGET_VALIDATED_S},
        },
        "summary": summary,
        "baselines": base,
        "baseline_runs": base_runs,
        "runs": runs,
    }
    print_report(results)
    if args.json:
        write_results(args.json, results)
    return 0 if runs and all(run["rc"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
