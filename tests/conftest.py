"""Shared fixtures: lab homes, free port ranges and a way to run the real ``mttr`` CLI."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mttr.lab.config import PORT_OFFSETS, port_in_use

VENV_BIN = Path(sys.executable).parent
MTTR = str(VENV_BIN / "mttr")


# Test labs draw their ports from here: below Linux's ephemeral range (32768-60999), where a client's
# connection or TIME_WAIT could hold a port between the check and the bind.
TEST_PORTS = range(10000, 32768)


def free_port_base() -> int:
    """A port base whose whole range is free; xdist workers draw from separate bands."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    band = int(worker[2:]) if worker[2:].isdigit() else 0
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), band + 1)
    span = max(PORT_OFFSETS.values()) + 1
    width = len(TEST_PORTS) // workers
    for _attempt in range(200):
        base = TEST_PORTS.start + band * width + random.randrange(0, width - span, span)
        if not any(port_in_use(base + offset) for offset in PORT_OFFSETS.values()):
            return base
    raise RuntimeError("no free port range found for a lab")


def make_home() -> Path:
    """A lab home the ``postgres`` user can traverse (pytest's tmp_path is 0700 under root)."""
    home = Path(tempfile.mkdtemp(prefix="mttr-lab-", dir="/tmp"))
    home.chmod(0o755)
    return home


def run_mttr(*args: str, home: Path | None = None, env: dict | None = None, timeout: float = 180):
    full_env = dict(os.environ, **(env or {}))
    full_env["PATH"] = f"{VENV_BIN}:{full_env.get('PATH', '')}"
    if home is not None:
        full_env["MTTR_HOME"] = str(home)
    return subprocess.run([MTTR, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=False)


class LabHandle:
    """A lab started through the real CLI, with its state for direct checks."""

    def __init__(self, home: Path, port_base: int):
        self.home = home
        self.port_base = port_base

    def mttr(self, *args: str, **kwargs):
        return run_mttr("lab", *args, home=self.home, **kwargs)

    def up(self):
        result = self.mttr("up", "--port-base", str(self.port_base))
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    @property
    def lab(self):
        from mttr.lab.core import Lab

        return Lab.open(self.home)

    def down(self):
        result = self.mttr("down", "--purge")
        assert result.returncode == 0, result.stdout + result.stderr
        return result


@pytest.fixture
def lab_home():
    home = make_home()
    yield home
    run_mttr("lab", "down", home=home)
    shutil.rmtree(home, ignore_errors=True)


def started_lab(replication: str = "async"):
    """A lab on a free port range; the machine is shared, so a port taken between the check and the
    bind (by another test or program) gets one more try on another range."""
    for attempt in range(3):
        handle = LabHandle(make_home(), free_port_base())
        result = handle.mttr("up", "--port-base", str(handle.port_base), "--replication", replication)
        if result.returncode == 0:
            return handle
        stop_lab(handle)
        if attempt == 2:
            raise AssertionError(result.stdout + result.stderr)
    raise AssertionError("unreachable")


def stop_lab(handle: LabHandle) -> None:
    handle.mttr("down", "--purge")
    shutil.rmtree(handle.home, ignore_errors=True)


@pytest.fixture(scope="module")
def module_lab():
    handle = started_lab()
    yield handle
    stop_lab(handle)


@pytest.fixture
def fresh_lab():
    handle = started_lab()
    yield handle
    stop_lab(handle)


REPO = Path(__file__).resolve().parents[1]
LAB_INVENTORY = REPO / "inventories" / "lab"


def run_playbook(
    private_data_dir: Path,
    home: Path,
    playbook: Path | str,
    extravars: dict | None = None,
    ident: str = "run",
    limit: str | None = None,
    cmdline: str | None = None,
    envvars: dict | None = None,
):
    """Run a playbook through ansible-runner against the lab inventory, as the CLI will."""
    import ansible_runner

    Path(private_data_dir).mkdir(parents=True, exist_ok=True)
    env = {"MTTR_HOME": str(home), "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"}
    env.update(envvars or {})
    return ansible_runner.run(
        private_data_dir=str(private_data_dir),
        playbook=str(playbook),
        inventory=str(LAB_INVENTORY),
        envvars=env,
        extravars=extravars or {},
        limit=limit,
        cmdline=cmdline,
        quiet=True,
        ident=ident,
    )


def task_result(runner, task_name: str) -> dict:
    """The registered result of the task called ``task_name`` (first ok or failed event)."""
    for event in runner.events:
        data = event.get("event_data", {})
        if event["event"] in ("runner_on_ok", "runner_on_failed") and data.get("task") == task_name:
            return data["res"]
    raise AssertionError(f"no result for task {task_name!r}")


def pytest_terminal_summary(terminalreporter):
    """Print the figures tests recorded with ``record_property("figure", ...)`` (also from xdist workers)."""
    figures = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", [])
        if name == "figure"
    ]
    if figures:
        terminalreporter.section("figures")
        for figure in figures:
            terminalreporter.write_line(figure)
