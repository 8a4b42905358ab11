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
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.common import loadavg, log, machine_facts, median, spread

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "results.json"
TIME_BIN = "/usr/bin/time"
TARGET_S = 2.0
TARGET_RATIO = 50.0
TARGET_MB = 200.0
HC_TASK = "health_check: probes in one call"
URI_TASK = "uri: one request per item"
PING_TASK = "ping: one module run"

PLAY_HEAD = """\
- name: mttr.recovery health_check benchmark
  hosts: localhost
  gather_facts: false
  vars_files:
    - probes.json
  tasks:
"""
PLAYBOOKS = {
    "noop.yml": PLAY_HEAD
    + """\
    - name: "noop: no module runs"
      ansible.builtin.meta: noop
""",
    "ping.yml": PLAY_HEAD
    + f"""\
    - name: "{PING_TASK}"
      ansible.builtin.ping:
""",
    "health_check.yml": PLAY_HEAD
    + f"""\
    - name: "{HC_TASK}"
      mttr.recovery.health_check:
        probes: "{{{{ bench_probes }}}}"
        concurrency: "{{{{ bench_concurrency | int }}}}"
        fail_on: down
""",
    "uri.yml": PLAY_HEAD
    + f"""\
    - name: "{URI_TASK}"
      ansible.builtin.uri:
        url: "{{{{ item.url }}}}"
      loop: "{{{{ bench_probes[:bench_uri_count | int] }}}}"
      loop_control:
        label: "{{{{ item.name }}}}"
""",
}


# ----------------------------------------------------------------------------- machine


# ----------------------------------------------------------------------------- target server


class Server:
    """The local HTTP target (server.py) in a process of its own; it stops when its stdin closes."""

    def __init__(self, kind, delay_ms=0.0):
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "server.py"), "--kind", kind, f"--delay-ms={delay_ms}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"the benchmark server did not start (said {line!r})")
        self.port = int(line[1])
        self.url_base = f"http://127.0.0.1:{self.port}"

    def stats(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/__stats")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    @contextlib.contextmanager
    def measure(self, into):
        """Add the server's request count and CPU seconds spent inside the block to ``into``."""
        before = self.stats()
        yield
        after = self.stats()
        into["server_requests"] = after["requests"] - before["requests"]
        into["server_cpu_s"] = round(after["cpu_s"] - before["cpu_s"], 4)

    def stop(self):
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _hammer(port, count, concurrency):
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(index):
        nonlocal ok
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /health?i={index} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = await reader.read()
            writer.close()
            ok += data.startswith(b"HTTP/1.1 200 ")

    await asyncio.gather(*(one(i) for i in range(count)))
    return ok


def server_capacity(server, count, concurrency):
    """Hit the server with a bare asyncio client (much cheaper per request than http.client in threads)."""
    result = {"client": "asyncio streams", "count": count, "concurrency": concurrency}
    with server.measure(result):
        started = time.perf_counter()
        result["ok"] = asyncio.run(_hammer(server.port, count, concurrency))
        result["wall_s"] = round(time.perf_counter() - started, 4)
    result["requests_per_s"] = round(count / result["wall_s"])
    result["server_cpu_ms_per_request"] = round(result["server_cpu_s"] * 1000 / count, 4)
    return result


# ----------------------------------------------------------------------------- engine alone


def engine_run(server, count, concurrency):
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


# ----------------------------------------------------------------------------- playbooks


class Bench:
    """A private data dir for ansible-runner with the inventory, the probe list and the playbooks."""

    def __init__(self, server, count, keep=False):
        import ansible_runner  # noqa: F401 (fail early when it is missing)

        self.server = server
        self.count = count
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix="mttr-bench-health-check-"))
        self.runs = 0
        project = self.dir / "project"
        inventory = self.dir / "inventory"
        project.mkdir()
        inventory.mkdir()
        (inventory / "hosts.yml").write_text(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
            f"      ansible_python_interpreter: {sys.executable}\n",
            encoding="utf-8",
        )
        probes = [
            {"name": f"probe-{i:04d}", "kind": "http", "url": f"{server.url_base}/health?i={i}"} for i in range(count)
        ]
        (project / "probes.json").write_text(json.dumps({"bench_probes": probes}, indent=1), encoding="utf-8")
        for name, text in PLAYBOOKS.items():
            (project / name).write_text(text, encoding="utf-8")
        self.time_log = self.dir / "module-time.log"
        self.wrapper = None
        if os.access(TIME_BIN, os.X_OK):
            self.wrapper = self.dir / "python-under-time"
            self.wrapper.write_text(
                "#!/bin/sh\n"
                f"exec {TIME_BIN} -a -o {self.time_log} "
                f"-f 'elapsed_s=%e maxrss_kb=%M user_s=%U sys_s=%S' {sys.executable} \"$@\"\n",
                encoding="utf-8",
            )
            self.wrapper.chmod(0o755)

    def close(self):
        if self.keep:
            log(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, playbook, task=None, extravars=None, under_time=False, envvars=None):
        """Run a playbook; return its wall time, the task's duration and result, and the server's counters."""
        import ansible_runner

        self.runs += 1
        extravars = dict(extravars or {})
        if under_time:
            extravars["ansible_python_interpreter"] = str(self.wrapper)
            self.time_log.unlink(missing_ok=True)
        result = {"playbook": playbook, "loadavg_1m": loadavg()[0]}
        with self.server.measure(result):
            started = time.perf_counter()
            runner = ansible_runner.run(
                private_data_dir=str(self.dir),
                playbook=playbook,
                extravars=extravars,
                ident=f"{self.runs:03d}-{Path(playbook).stem}",
                envvars=envvars,
                quiet=True,
            )
            result["playbook_s"] = round(time.perf_counter() - started, 4)
        if runner.rc != 0:
            tail = runner.stdout.read()[-3000:]
            raise RuntimeError(f"{playbook} failed (rc {runner.rc}, {runner.status}):\n{tail}")
        for event in runner.events:
            data = event.get("event_data", {})
            if task and event.get("event") == "runner_on_ok" and data.get("task") == task:
                result["task_s"] = round(data["duration"], 4)
                result["res"] = data.get("res", {})
        if task and "task_s" not in result:
            raise RuntimeError(f"{playbook}: no runner_on_ok event for task {task!r}")
        if under_time:
            lines = [ln for ln in self.time_log.read_text(encoding="utf-8").splitlines() if "maxrss_kb=" in ln]
            if len(lines) != 1:
                raise RuntimeError(f"expected one module process in {self.time_log}, got {len(lines)}")
            fields = dict(item.split("=") for item in lines[0].split())
            result["module_process"] = {key: float(value) for key, value in fields.items()}
        return result


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


# ----------------------------------------------------------------------------- report


def summarize(raw, args):
    count = args.count
    summary = {"health_check": {}}
    for concurrency in args.concurrency:
        runs = [r for r in raw["health_check"] if r["concurrency"] == concurrency]
        mem = [r for r in raw["health_check_memory"] if r["concurrency"] == concurrency]
        engine = [r for r in raw["engine"] if r["concurrency"] == concurrency]
        probing = [r["module_elapsed_s"] for r in runs]
        summary["health_check"][str(concurrency)] = {
            "task_s": spread([r["task_s"] for r in runs]),
            "playbook_s": spread([r["playbook_s"] for r in runs]),
            "module_probing_s": spread(probing),
            "server_cpu_s": spread([r["server_cpu_s"] for r in runs]),
            "server_busy_fraction_of_probing": median(
                [r["server_cpu_s"] / r["module_elapsed_s"] for r in runs if r["module_elapsed_s"]]
            ),
            "module_process_wall_s": spread([r["module_process"]["elapsed_s"] for r in mem]),
            "module_process_maxrss_mb": spread([r["module_process"]["maxrss_kb"] / 1024 for r in mem]),
            "module_process_cpu_s": spread([r["module_process"]["user_s"] + r["module_process"]["sys_s"] for r in mem]),
            # The same task in the runs under /usr/bin/time, and in each of them what the module process did
            # not account for: the controller's share (templating the arguments, building and copying AnsiballZ,
            # the shell commands around it, reading the result).
            "task_s_under_time": spread([r["task_s"] for r in mem]),
            "controller_side_s": spread([r["task_s"] - r["module_process"]["elapsed_s"] for r in mem]),
            "engine_probe_s": spread([r["probe_s"] for r in engine]),
            "engine_maxrss_mb": spread([r["maxrss_kb"] / 1024 for r in engine]),
            "engine_maxrss_after_imports_mb": median([r["maxrss_after_imports_kb"] / 1024 for r in engine]),
        }
    summary["engine_sequential_probe_s"] = spread([r["probe_s"] for r in raw.get("engine_sequential", [])])
    summary["noop_playbook_s"] = spread([r["playbook_s"] for r in raw["noop"]])
    summary["ping_task_s"] = spread([r["task_s"] for r in raw["ping"]])
    summary["ping_playbook_s"] = spread([r["playbook_s"] for r in raw["ping"]])
    summary["ping_module_process_maxrss_mb"] = median(
        [r["module_process"]["maxrss_kb"] / 1024 for r in raw["ping_memory"]]
    )
    for hc in summary["health_check"].values():
        hc["playbook_minus_noop_s"] = round(hc["playbook_s"]["median"] - summary["noop_playbook_s"]["median"], 4)

    uri = raw.get("uri")
    if uri:
        per_item = uri["task_s"] / uri["items"]
        extrapolated = uri["items"] != count
        summary["uri"] = {
            "items_run": uri["items"],
            "task_s_measured": uri["task_s"],
            "playbook_s_measured": uri["playbook_s"],
            "per_item_s": round(per_item, 4),
            "task_s_for_count": round(uri["task_s"] if not extrapolated else per_item * count, 2),
            "extrapolated": extrapolated,
            "note": f"extrapolated linearly from {uri['items']} items" if extrapolated else "measured in full",
        }
        default = str(args.concurrency[0])
        best = min(summary["health_check"], key=lambda c: summary["health_check"][c]["task_s"]["median"])
        ratios = {}
        for label, concurrency in (("first_concurrency", default), ("fastest_concurrency", best)):
            hc = summary["health_check"][concurrency]
            ratios[label] = {
                "concurrency": int(concurrency),
                "task_ratio": round(summary["uri"]["task_s_for_count"] / hc["task_s"]["median"], 1),
                "extrapolated": extrapolated,
            }
        summary["ratio_uri_over_health_check"] = ratios
    first = summary["health_check"][str(args.concurrency[0])]
    summary["targets"] = {
        "under_2_s_task": first["task_s"]["median"] < TARGET_S,
        "under_200_mb": (first["module_process_maxrss_mb"] or {"max": first["engine_maxrss_mb"]["max"]})["max"]
        < TARGET_MB,
        "at_least_50x": (
            summary["ratio_uri_over_health_check"]["first_concurrency"]["task_ratio"] >= TARGET_RATIO if uri else None
        ),
        "concurrency": args.concurrency[0],
    }
    return summary


def fmt(value, unit="s", digits=3):
    if value is None:
        return "-"
    return f"{value:.{digits}f} {unit}"


def fmt_spread(stats, unit="s", digits=3):
    if not stats:
        return "-"
    return f"{stats['median']:.{digits}f} [{stats['min']:.2f}-{stats['max']:.2f}]" + (f" {unit}" if unit != "s" else "")


def print_report(results):
    s = results["summary"]
    m = results["machine"]
    cap = results["server"]["capacity"]
    out = [
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}, ansible-core {m['ansible_core']}, "
        f"ansible-runner {m['ansible_runner']}; load average {m['loadavg_start']} -> {m['loadavg_end']}",
        f"server: {results['server']['kind']}, {results['server'].get('delay_ms', 0):g} ms delay; "
        f"alone: {cap['count']} requests in {cap['wall_s']:.3f} s "
        f"({cap['requests_per_s']} req/s to an asyncio client), {cap['server_cpu_ms_per_request']:.3f} ms CPU each",
        f"{results['count']} http probes; {results['repeats']} runs each; seconds, median [min-max]",
        "",
    ]
    columns = list(s["health_check"])
    rows = [
        ("health_check task (runner event)", lambda hc: fmt_spread(hc["task_s"])),
        ("  probing in module (elapsed_s)", lambda hc: fmt_spread(hc["module_probing_s"])),
        ("playbook wall", lambda hc: fmt_spread(hc["playbook_s"])),
        ("playbook - noop playbook", lambda hc: fmt(hc["playbook_minus_noop_s"])),
        ("task, run under /usr/bin/time", lambda hc: fmt_spread(hc["task_s_under_time"])),
        ("  module process wall (time %e)", lambda hc: fmt_spread(hc["module_process_wall_s"])),
        ("  module process CPU user+sys", lambda hc: fmt_spread(hc["module_process_cpu_s"])),
        ("  controller side (task - process)", lambda hc: fmt_spread(hc["controller_side_s"])),
        ("  module process peak RSS (max)", lambda hc: fmt((hc["module_process_maxrss_mb"] or {}).get("max"), "MB", 1)),
        ("engine alone: probing", lambda hc: fmt_spread(hc["engine_probe_s"])),
        ("engine alone: peak RSS (max)", lambda hc: fmt(hc["engine_maxrss_mb"]["max"], "MB", 1)),
        ("server CPU / probing time", lambda hc: f"{hc['server_busy_fraction_of_probing']:.0%}"),
    ]
    out.append(f"{'concurrency':<34}" + "".join(f"{c:>24}" for c in columns))
    for label, cell in rows:
        out.append(f"{label:<34}" + "".join(f"{cell(s['health_check'][c]):>24}" for c in columns))
    out += [
        "",
        f"noop playbook: {fmt_spread(s['noop_playbook_s'])} s; ping task: {fmt_spread(s['ping_task_s'])} s, "
        f"its module process peak RSS {fmt(s['ping_module_process_maxrss_mb'], 'MB', 1)}",
        f"engine alone at concurrency 1 (one probe at a time): {fmt_spread(s.get('engine_sequential_probe_s'))} s",
    ]
    if "uri" in s:
        uri = s["uri"]
        out.append(
            f"uri loop: {uri['items_run']} items: task {uri['task_s_measured']:.1f} s, playbook "
            f"{uri['playbook_s_measured']:.1f} s, {uri['per_item_s']:.3f} s per item; for {results['count']} items: "
            f"{uri['task_s_for_count']:.1f} s ({uri['note']})"
        )
        ratios = s["ratio_uri_over_health_check"]
        if ratios["fastest_concurrency"]["concurrency"] == ratios["first_concurrency"]["concurrency"]:
            ratios = {"first_concurrency": ratios["first_concurrency"]}
        for label, ratio in ratios.items():
            tag = " (EXTRAPOLATED uri figure)" if ratio["extrapolated"] else ""
            which = label.split("_", maxsplit=1)[0]
            out.append(f"ratio uri loop / health_check task, concurrency {ratio['concurrency']} ({which}): ")
            out[-1] += f"{ratio['task_ratio']}x{tag}"
    else:
        out.append("uri loop: skipped (--uri-count 0)")
    t = s["targets"]
    out.append(
        f"targets at concurrency {t['concurrency']}: task < {TARGET_S:.0f} s: {t['under_2_s_task']}; "
        f"peak < {TARGET_MB:.0f} MB: {t['under_200_mb']}; >= {TARGET_RATIO:.0f}x: {t['at_least_50x']}"
    )
    print("\n".join(out))


# ----------------------------------------------------------------------------- main


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
        results = json.loads(Path(args.report).read_text(encoding="utf-8"))
        recorded = argparse.Namespace(count=results["count"], concurrency=results["concurrency"])
        results["summary"] = summarize(results["raw"], recorded)
        print_report(results)
        return
    args.concurrency = concurrency_list(args.concurrency)
    uri_count = args.count if args.uri_count is None else args.uri_count
    # ansible-runner starts "ansible-playbook" from PATH: use the one next to this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

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
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
