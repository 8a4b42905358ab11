"""The failover benchmark's baselines: fixed costs (Python, ansible-playbook, a no-op playbook, trivial
tasks, module runs, the role's templates) on a healthy lab, with nothing to fail over."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.failover.drivers import (
    ANSIBLE_PLAYBOOK,
    BENCH_PLAYBOOKS,
    REPO,
    run_cli,
    run_runner,
)


def timed(argv, env=None):
    started = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=REPO)
    elapsed = round(time.time() - started, 4)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return elapsed


def baselines(lab, strategies, workdir, ident):
    """Fixed costs, on a healthy lab (nothing to fail over)."""
    out = {
        "python -c pass": timed([sys.executable, "-c", "pass"]),
        "python -c 'import psycopg'": timed([sys.executable, "-c", "import psycopg"]),
        "ansible-playbook --version": timed([str(ANSIBLE_PLAYBOOK), "--version"]),
    }
    plan = [("noop.yml", "runner", "linear", None), ("noop.yml", "cli", "linear", None)]
    plan.append(("noop.yml", "cli", "linear", {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal"}))
    plan += [("debug10.yml", "cli", "linear", None), ("template3.yml", "cli", "linear", None)]
    plan.append(("ping5.yml", "cli", "linear", None))
    if "mitogen" in strategies:
        plan += [("noop.yml", "cli", "mitogen", None), ("ping5.yml", "cli", "mitogen", None)]
    for playbook, driver, strategy, extra in plan:
        name = f"{Path(playbook).stem} {driver}-{strategy}" + (" minimal-callback" if extra else "")
        if driver == "runner":
            name_id = f"{ident}-{Path(playbook).stem}"
            result = run_runner(lab, strategy, workdir / name_id, name_id, BENCH_PLAYBOOKS / playbook)[0]
        else:
            result = run_cli(lab, strategy, BENCH_PLAYBOOKS / playbook, extra)[0]
        if result["rc"] != 0:
            raise RuntimeError(f"baseline {name} failed:\n{result.get('tail')}")
        out[name] = result["playbook_s"]
    return out
