"""What every benchmark runner here shares: logging with a time stamp, and medians with their range.

Imported as ``ansible_collections.mttr.recovery.bench.common`` (the repository is linked into the
virtualenv as the collection), like the tests' shared helpers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import statistics
import sys
import time


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


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


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
