"""Where the health_check module process spends its time, for the health_check benchmark.

``python phases.py [--count N] [--concurrency C] [--repeats R] [--json PATH]``:

1. runs the benchmark's health_check playbook once with ``ANSIBLE_KEEP_REMOTE_FILES=1``, which leaves the
   exact ``AnsiballZ_health_check.py`` Ansible ran (1000 probes against this script's server embedded);
2. runs that file R times on its own, as Ansible does (modules imported from the zip payload, so no
   bytecode cache), and records wall time and peak RSS (``wait4``);
3. explodes it (``AnsiballZ_health_check.py explode``) and runs the module R times from the exploded
   tree under a driver (``--driver``) that times the phases: imports, ``AnsibleModule()`` (argument
   validation), ``normalize``, ``check`` (the probing), ``exit_json`` (of which ``remove_values``).
   The first driver run compiles the sources (the zip import does that every time); the others reuse
   the bytecode.

The driver patches ansible-core internals (``_ansiballz._loader.run_module``) and is written against
ansible-core 2.21; it is a measuring aid, not part of the benchmark's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODULE_FQN = "ansible_collections.mttr.recovery.plugins.modules.health_check"


def run_driver(debug_dir):
    """Run the exploded module in this process, timing its phases; print them as JSON on stderr."""
    started = time.perf_counter()
    sys.path.insert(0, debug_dir)
    from ansible.module_utils import basic
    from ansible.module_utils._internal._ansiballz import _loader

    from ansible_collections.mttr.recovery.plugins.module_utils import probes

    phases = {"imports_s": time.perf_counter() - started}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            begin = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - begin

        return wrapper

    basic.AnsibleModule.__init__ = timed("AnsibleModule_s", basic.AnsibleModule.__init__)
    basic.AnsibleModule.exit_json = timed("exit_json_s", basic.AnsibleModule.exit_json)
    basic.remove_values = timed("exit_json_remove_values_s", basic.remove_values)
    probes.normalize = timed("normalize_s", probes.normalize)
    probes.check = timed("check_s", probes.check)
    params = Path(debug_dir, "args").read_bytes()
    output = io.StringIO()
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(output):
        _loader.run_module(
            json_params=params, profile="legacy", module_fqn=MODULE_FQN, modlib_path=debug_dir, extensions={}
        )
    phases["total_in_process_s"] = time.perf_counter() - started
    phases["result_bytes"] = len(output.getvalue())
    print(json.dumps({key: round(value, 4) for key, value in phases.items()}), file=sys.stderr)


def timed_process(argv, **kwargs):
    """Run a command; return (wall seconds, peak RSS in MB of that process) from wait4."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, **kwargs)
    status, usage = os.wait4(process.pid, 0)[1:]
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{argv[:2]} exited with {process.returncode}")
    return round(wall, 4), round(usage.ru_maxrss / 1024, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the report to PATH")
    parser.add_argument("--driver", metavar="DEBUG_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.driver:
        run_driver(args.driver)
        return

    # imported here, not at the top: the driver process (above) times its own imports
    from ansible_collections.mttr.recovery.bench.common import venv_on_path
    from ansible_collections.mttr.recovery.bench.health_check.run import HC_TASK, Bench
    from ansible_collections.mttr.recovery.bench.health_check.target import Server

    started = time.time()
    load_start = round(os.getloadavg()[0], 2)

    venv_on_path()
    server = Server("asyncio")
    bench = None
    try:
        bench = Bench(server, args.count)
        remote_tmp = bench.dir / "remote-tmp"
        env = {"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": str(remote_tmp)}
        bench.run("health_check.yml", HC_TASK, {"bench_concurrency": args.concurrency}, envvars=env)
        ansiballz = next(remote_tmp.glob("*/AnsiballZ_health_check.py"))

        subprocess.run(
            [sys.executable, str(ansiballz), "explode"], cwd=ansiballz.parent, check=True, capture_output=True
        )
        driver_argv = [sys.executable, __file__, "--driver", str(ansiballz.parent / "debug_dir")]

        def driver_run():
            out = subprocess.run(driver_argv, capture_output=True, text=True, check=True)
            return json.loads(out.stderr.strip().splitlines()[-1])

        # The first driver run compiles the exploded sources; then the three measurements take turns,
        # so that they see the same load on a busy machine.
        driver = [driver_run()]
        startup, whole = [], []
        for _run in range(args.repeats):
            startup.append(timed_process([sys.executable, "-c", "pass"]))
            whole.append(timed_process([sys.executable, str(ansiballz)]))
            driver.append(driver_run())
    finally:
        if bench:
            bench.close()
        server.stop()

    def med(values):
        return round(statistics.median(values), 4)

    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "loadavg_1m_start_end": [load_start, round(os.getloadavg()[0], 2)],
        "count": args.count,
        "concurrency": args.concurrency,
        "python_c_pass_s": med([wall for wall, rss in startup]),
        "ansiballz_process_s": med([wall for wall, rss in whole]),
        "ansiballz_process_maxrss_mb": max(rss for wall, rss in whole),
        "driver_first_run": driver[0],
        "driver_median_of_the_others": {key: med([run[key] for run in driver[1:]]) for key in driver[1]},
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
