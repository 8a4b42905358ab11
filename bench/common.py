"""What every benchmark runner here shares: logging, medians with their range, the machine's facts,
results files, and running a playbook through ansible-runner with its module process under GNU time.

Imported as ``ansible_collections.mttr.recovery.bench.common`` (the repository is linked into the
virtualenv as the collection), like the tests' shared helpers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

TIME_BIN = "/usr/bin/time"
# GNU time's figures of one process: wall, peak RSS (of it and its waited-for children), CPU
TIME_FORMAT = "elapsed_s=%e maxrss_kb=%M user_s=%U sys_s=%S"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def spread(values):
    """Median, min, max and the runs themselves (None values left out); None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": median(values),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
        "runs": [round(v, 4) for v in values],
    }


def fmt_spread(stats, digits=2):
    """``median [min-max]`` of a ``spread()``; ``-`` when there is none."""
    if not stats:
        return "-"
    return f"{stats['median']:.{digits}f} [{stats['min']:.{digits}f}-{stats['max']:.{digits}f}]"


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def tool_version(argv):
    """The first line ``argv`` (e.g. ``tar --version``) prints, or None when it cannot run."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError, IndexError):
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return None


def machine_facts(**extra):
    """The machine and the Python/Ansible under test, the load at the start, and ``extra`` facts."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_mb = None
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_mb = int(line.split()[1]) // 1024
    from ansible.release import __version__ as ansible_core_version

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_total_mb": mem_mb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "ansible_core": ansible_core_version,
        "ansible_runner": importlib.metadata.version("ansible-runner"),
        **extra,
        "loadavg_start": loadavg(),
    }


def venv_on_path():
    """ansible-runner and the lab start ``ansible-playbook`` and ``mttr`` from PATH: use the venv's."""
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _interrupted(signum, frame):
    del frame
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_signals():
    """SIGINT and SIGTERM raise KeyboardInterrupt, so a runner's cleanup (``finally``) always runs."""
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)


def read_results(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_results(path, results, indent=1):
    Path(path).write_text(json.dumps(results, indent=indent) + "\n", encoding="utf-8")
    log(f"wrote {path}")


def time_records(path):
    """The figures of every process GNU time (``TIME_FORMAT``) appended to ``path``."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if "maxrss_kb=" in line:
            records.append({key: float(value) for key, value in (item.split("=") for item in line.split())})
    return records


def run_playbook(private_data_dir, playbook, ident, **kwargs):
    """``ansible_runner.run()``, timed: return the runner, its start (epoch) and its wall seconds.

    ansible-runner replaces the SIGINT and SIGTERM handlers with its own (they only cancel its run) and
    leaves them installed: the caller's are put back, and a cancelled run raises KeyboardInterrupt.
    """
    import ansible_runner

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    started = time.time()
    begin = time.perf_counter()
    runner = ansible_runner.run(
        private_data_dir=str(private_data_dir), playbook=str(playbook), ident=ident, quiet=True, **kwargs
    )
    elapsed = time.perf_counter() - begin
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
    if runner.status == "canceled":
        raise KeyboardInterrupt(f"{playbook} was cancelled")
    return runner, started, elapsed


class PlaybookRunner:
    """An ansible-runner private data dir: a localhost inventory (local connection, this venv's python),
    the playbooks of ``playbooks`` (a directory) in its project, and ``python-under-time``, a wrapper that
    runs that python under GNU time, so the module process's wall, CPU and peak RSS are known.

    ``all_under_time``: the inventory's interpreter is the wrapper (every run is measured); otherwise only
    the runs asked for (``under_time=True``) are, with the wrapper given as an extra var.
    """

    def __init__(self, directory, playbooks, all_under_time=False, measure=None):
        import ansible_runner  # noqa: F401 (fail early when it is missing)

        self.dir = Path(directory)
        self.project = self.dir / "project"
        self.project.mkdir(parents=True)
        (self.dir / "inventory").mkdir()
        for playbook in sorted(Path(playbooks).glob("*.yml")):
            shutil.copy(playbook, self.project / playbook.name)
        self.runs = 0
        self.all_under_time = all_under_time
        self.measure = measure  # a context manager factory: adds its own figures of the run to a dict
        self.time_log = self.dir / "module-time.log"
        self.wrapper = None
        if os.access(TIME_BIN, os.X_OK):
            self.wrapper = self.dir / "python-under-time"
            self.wrapper.write_text(
                f"#!/bin/sh\nexec {TIME_BIN} -a -o {self.time_log} -f '{TIME_FORMAT}' {sys.executable} \"$@\"\n",
                encoding="utf-8",
            )
            self.wrapper.chmod(0o755)
        elif all_under_time:
            raise RuntimeError(f"{TIME_BIN} is missing (apt-get install time)")
        interpreter = self.wrapper if all_under_time else sys.executable
        (self.dir / "inventory" / "hosts.yml").write_text(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
            f"      ansible_python_interpreter: {interpreter}\n",
            encoding="utf-8",
        )

    def run(self, playbook, task=None, extravars=None, under_time=False, envvars=None):
        """Run a playbook; return its wall time, the task's duration and result, and the module process."""
        self.runs += 1
        extravars = dict(extravars or {})
        under_time = under_time or self.all_under_time
        if under_time:
            if not self.all_under_time:
                extravars["ansible_python_interpreter"] = str(self.wrapper)
            self.time_log.unlink(missing_ok=True)
        result = {"playbook": playbook, "loadavg_1m": loadavg()[0]}
        with self.measure(result) if self.measure else contextlib.nullcontext():
            runner, _started, elapsed = run_playbook(
                self.dir, playbook, f"{self.runs:03d}-{Path(playbook).stem}", extravars=extravars, envvars=envvars
            )
            result["playbook_s"] = round(elapsed, 4)
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
            records = time_records(self.time_log)
            if len(records) != 1:
                raise RuntimeError(f"expected one module process in {self.time_log}, got {len(records)}")
            result["module_process"] = records[0]
        return result
