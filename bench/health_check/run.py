"""Benchmark for issue "health_check": 1000 HTTP probes in one task versus an ansible.builtin.uri loop.

Runs, through ansible-runner (which runs ansible-playbook) on localhost with a local connection:

- ``noop.yml``: the same play with an ``ansible.builtin.meta: noop`` task, the fixed cost of a playbook;
- ``ping.yml``: one ``ansible.builtin.ping`` task, the fixed cost of running any module once;
- ``health_check.yml``: ONE ``mttr.recovery.health_check`` task with the 1000 http probes, at each
  concurrency asked for;
- ``uri.yml``: ``ansible.builtin.uri`` looped over the same 1000 URLs (or the first ``--uri-count``).

The task times come from ansible-runner's job events: the ``runner_on_ok`` event of the task carries
``duration``, from the worker starting the task on the host (``v2_runner_on_start``) to its result
reaching the controller's callback. For a loop that spans every item. The playbook times are the wall
time of ``ansible_runner.run()``, which includes starting ansible-playbook and loading the 1000-probe
vars file; ``noop.yml`` is that baseline, and ``playbook - noop`` cross-checks the task time.

Peak memory of the module process: every health_check run is repeated with ``ansible_python_interpreter``
pointing at a wrapper that runs the venv's python under ``/usr/bin/time -f %M``, i.e. the real process
that runs the module on the host. The engine alone (``engine.py``: normalize + check + JSON encoding, no
Ansible) is also run in a process of its own and reports its own ``ru_maxrss``.

The target is a local HTTP server (``server.py``, asyncio by default) on 127.0.0.1 and a free port,
started here. Every run checks that the server saw exactly one request per probe, and records the
server's CPU time, so its share of the probing window shows whether it could be the bottleneck; a
capacity test hits it with a lighter asyncio client first.

    .venv/bin/python bench/health_check/run.py [--uri-count N] [--concurrency C ...] [--repeats R] [--json [PATH]]
        [--count N] [--server asyncio|threading] [--server-delay-ms MS] [--keep] [--report PATH]
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
    TIME_BIN,
    PlaybookRunner,
    loadavg,
    log,
    machine_facts,
    read_results,
    venv_on_path,
    write_results,
)
from ansible_collections.mttr.recovery.bench.health_check.report import print_report, summarize
from ansible_collections.mttr.recovery.bench.health_check.target import Server, server_capacity

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "results.json"
PLAYBOOKS = HERE / "playbooks"
# the task names in playbooks/
HC_TASK = "health_check: probes in one call"
URI_TASK = "uri: one request per item"
PING_TASK = "ping: one module run"


def engine_run(server, count, concurrency):
    """engine.py in a process of its own: the probing without Ansible, and that process's peak RSS."""
    result = {}
    with server.measure(result):
        out = subprocess.run(
            [
                sys.executable,
                str(HERE / "engine.py"),
                f"--url-base={server.url_base}",
                f"--count={count}",
                f"--concurrency={concurrency}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return result


class Bench(PlaybookRunner):
    """The playbooks in a private data dir of their own, with the probe list (``probes.json``) beside them;
    every run also counts the server's requests and CPU time."""

    def __init__(self, server, count, keep=False):
        super().__init__(tempfile.mkdtemp(prefix="mttr-bench-health-check-"), PLAYBOOKS, measure=server.measure)
        self.count = count
        self.keep = keep
        probes = [
            {"name": f"probe-{i:04d}", "kind": "http", "url": f"{server.url_base}/health?i={i}"} for i in range(count)
        ]
        (self.project / "probes.json").write_text(json.dumps({"bench_probes": probes}, indent=1), encoding="utf-8")

    def close(self):
        if self.keep:
            log(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def health_check_run(bench, concurrency, under_time=False):
    result = bench.run("health_check.yml", HC_TASK, {"bench_concurrency": concurrency}, under_time=under_time)
    res = result.pop("res")
    result["concurrency"] = concurrency
    result["module_elapsed_s"] = res.get("elapsed_s")
    result["counts"] = res.get("counts")
    result["latency_p50_ms"] = res.get("latency_p50_ms")
    result["latency_p95_ms"] = res.get("latency_p95_ms")
    if result["counts"] != {"healthy": bench.count, "degraded": 0, "down": 0}:
        raise RuntimeError(f"health_check did not report {bench.count} healthy probes: {result['counts']}")
    if result["server_requests"] != bench.count:
        raise RuntimeError(f"the server saw {result['server_requests']} requests, expected {bench.count}")
    return result


def uri_run(bench, uri_count):
    result = bench.run("uri.yml", URI_TASK, {"bench_uri_count": uri_count})
    res = result.pop("res")
    result["items"] = len(res.get("results", []))
    if result["items"] != uri_count or result["server_requests"] != uri_count:
        raise RuntimeError(f"uri loop: {result['items']} items, {result['server_requests']} requests, not {uri_count}")
    return result


def concurrency_list(values):
    result = []
    for value in values or ["32", "100", "200"]:
        result += [int(v) for v in str(value).split(",") if v.strip()]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="probes in the health_check call (default 1000)")
    parser.add_argument(
        "--uri-count",
        type=int,
        default=None,
        help="items in the uri loop (default: --count; 0 skips it). Below --count the figure is extrapolated",
    )
    parser.add_argument(
        "--concurrency",
        action="append",
        help="health_check concurrency; repeat or comma-separate (default 32,100,200; the first is the headline)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument("--server", choices=["asyncio", "threading"], default="asyncio")
    parser.add_argument(
        "--server-delay-ms",
        type=float,
        default=0.0,
        help="the server waits this long before each answer, like a remote service (default 0)",
    )
    parser.add_argument(
        "--json", nargs="?", const=str(DEFAULT_JSON), help=f"write the results as JSON (default path {DEFAULT_JSON})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the ansible-runner private data dir")
    parser.add_argument("--report", metavar="PATH", help="print the table of a results file again (runs nothing)")
    args = parser.parse_args(argv)
    if args.report:
        results = read_results(args.report)
        recorded = argparse.Namespace(count=results["count"], concurrency=results["concurrency"])
        results["summary"] = summarize(results["raw"], recorded)
        print_report(results)
        return
    args.concurrency = concurrency_list(args.concurrency)
    uri_count = args.count if args.uri_count is None else args.uri_count
    venv_on_path()

    results = {
        "benchmark": "health_check: 1000 HTTP probes",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_facts(),
        "count": args.count,
        "repeats": args.repeats,
        "concurrency": args.concurrency,
        "server_delay_ms": args.server_delay_ms,
    }
    raw = {key: [] for key in ("health_check", "health_check_memory", "engine", "engine_sequential")}
    raw.update(noop=[], ping=[], ping_memory=[])
    server = Server(args.server, args.server_delay_ms)
    bench = None
    try:
        log(f"server ({args.server}) on {server.url_base}")
        results["server"] = {
            "kind": args.server,
            "delay_ms": args.server_delay_ms,
            "capacity": server_capacity(server, args.count, 100),
        }
        log(f"server capacity: {results['server']['capacity']}")
        bench = Bench(server, args.count, keep=args.keep)
        if bench.wrapper is None:
            log(f"{TIME_BIN} is missing (apt-get install time): no peak memory of the module process")
        bench.run("ping.yml", PING_TASK)  # warm-up: caches, first AnsiballZ builds
        bench.run("health_check.yml", HC_TASK, {"bench_concurrency": args.concurrency[0]})
        for repeat in range(args.repeats):
            raw["noop"].append(bench.run("noop.yml"))
            raw["ping"].append(bench.run("ping.yml", PING_TASK))
            for concurrency in args.concurrency:
                run = health_check_run(bench, concurrency)
                raw["health_check"].append(run)
                log(
                    f"#{repeat + 1} health_check c={concurrency}: task {run['task_s']:.3f} s, "
                    f"playbook {run['playbook_s']:.3f} s, probing {run['module_elapsed_s']:.3f} s"
                )
                raw["engine"].append(engine_run(server, args.count, concurrency))
                if bench.wrapper:
                    raw["health_check_memory"].append(health_check_run(bench, concurrency, under_time=True))
            if bench.wrapper:
                raw["ping_memory"].append(bench.run("ping.yml", PING_TASK, under_time=True))
            # One probe at a time: shows whether the threads buy anything against this server.
            raw["engine_sequential"].append(engine_run(server, args.count, 1))
        if uri_count:
            log(f"uri loop over {uri_count} items (one module run each: minutes)...")
            raw["uri"] = uri_run(bench, uri_count)
            log(f"uri loop: task {raw['uri']['task_s']:.1f} s")
    finally:
        if bench:
            bench.close()
        server.stop()
    results["machine"]["loadavg_end"] = loadavg()
    for runs in raw.values():
        for run in runs if isinstance(runs, list) else [runs]:
            run.pop("res", None)
    results["summary"] = summarize(raw, args)
    results["raw"] = raw
    print_report(results)
    if args.json:
        write_results(args.json, results)


if __name__ == "__main__":
    main()
