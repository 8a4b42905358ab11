"""How the failover benchmark runs a playbook or the raw failover, and times it: ansible-playbook through
ansible-runner or as a plain subprocess (linear or mitogen strategy), or ``raw_failover.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.common import run_playbook
from ansible_collections.mttr.recovery.bench.failover.timeline import rel
from ansible_collections.mttr.recovery.bench.failover.writer import INSERT_SQL

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PLAYBOOK = REPO / "playbooks" / "failover.yml"
INVENTORY = REPO / "inventories" / "lab"
BENCH_PLAYBOOKS = HERE / "playbooks"  # the baselines and the lean prototype


def mitogen_strategy_dir():
    """The strategy plugins directory of an installed ansible_mitogen, or None."""
    try:
        import ansible_mitogen
    except ImportError:
        return None
    path = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return str(path) if (path / "mitogen_linear.py").exists() else None


def playbook_env(lab, strategy, extra=None):
    env = dict(lab.env) if lab else {}
    env["ANSIBLE_NOCOLOR"] = "1"
    if strategy == "mitogen":
        env["ANSIBLE_STRATEGY_PLUGINS"] = mitogen_strategy_dir()
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
    env.update(extra or {})
    return env


def run_cli(lab, strategy, playbook=PLAYBOOK, extra_env=None, inventory=INVENTORY):
    """ansible-playbook as a plain subprocess; every output line is timestamped when it arrives."""
    env = dict(os.environ, **playbook_env(lab, strategy, extra_env))
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)]
    lines = []
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        lines.append((time.time(), line.rstrip("\n")))
    rc = proc.wait()
    t_end = time.time()
    result = {"t0": t0, "rc": rc, "playbook_s": rel(t_end, t0)}
    if rc != 0:
        result["tail"] = "\n".join(line[1] for line in lines[-40:])
    return result, lines


def run_runner(lab, strategy, workdir, ident, playbook=PLAYBOOK, extra_env=None, inventory=INVENTORY):
    """The playbook through ansible-runner in its own private data dir; its job events."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    runner, t0, elapsed = run_playbook(
        workdir, playbook, ident, inventory=str(inventory), envvars=playbook_env(lab, strategy, extra_env)
    )
    result = {"t0": t0, "rc": runner.rc, "playbook_s": round(elapsed, 4)}
    if runner.rc != 0:
        result["tail"] = runner.stdout.read()[-3000:]
    return result, list(runner.events)


def run_raw(lab, reload_before_promote=False, kick=False):
    """raw_failover.py in a process of its own, pg1 -> pg2; its steps as times from its start."""
    cfg = {
        "reload_before_promote": reload_before_promote,
        "kick": kick,
        "old_data": lab.state["nodes"]["pg1"]["data"],
        "run_as": lab.state.get("run_as"),
        "new_port": lab.state["ports"]["pg2"],
        "user": lab.state["db"]["superuser"],
        "password": lab.state["db"]["superuser_password"],
        "dbname": lab.state["db"]["name"],
        "admin_socket": lab.state["lb"]["admin_socket"],
        "backend": lab.state["lb"]["db_backend"],
        "old": "pg1",
        "new": "pg2",
        "lb_port": lab.state["ports"]["lb_db"],
        "insert_sql": INSERT_SQL,
    }
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(HERE / "raw_failover.py")],
        input=json.dumps(cfg) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    t_end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"raw failover failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    marks = out["marks"]
    return {
        "t0": t0,
        "rc": 0,
        "playbook_s": rel(t_end, t0),
        "steps": {name: rel(stamp, t0) for name, stamp in marks.items()},
        "step_durations": {
            "python_start_and_imports": rel(marks["imports_done"], t0),
            "standby_signal": rel(marks["standby_signal_written"], marks["imports_done"]),
            "connect_new": rel(marks["new_connected"], marks["standby_signal_written"]),
            "pg_promote": rel(marks["promoted"], marks["new_connected"]),
            "haproxy_switch": rel(marks["haproxy_switched"], marks["promoted"]),
            "own_first_write": rel(marks["own_first_write"], marks["haproxy_switched"]),
        },
        "promoted": out["promoted"],
        "kicks": out["kicks"],
        "own_write_port": out["port"],
    }
