"""Pid-file process control that never touches a process the lab did not start."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.mttr.recovery.plugins.module_utils.processes import pid_alive


class LabError(Exception):
    """A lab operation failed; the message says what is wrong and what to do."""


def process_matches(pid: int, marker: str) -> bool:
    """True when the process's command line mentions ``marker`` or runs with ``marker`` as cwd."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if marker in cmdline:
        return True
    try:
        return os.readlink(f"/proc/{pid}/cwd") == marker
    except OSError:
        return False


def read_pid(pidfile: Path) -> int | None:
    try:
        first = pidfile.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


@dataclass
class Tracked:
    """A process known by its pid file and an identity marker (a path only it has)."""

    name: str
    pidfile: Path
    marker: str

    def pid(self) -> int | None:
        """Return the pid when it is alive and ours, else None (stale files are left for ``clean``)."""
        pid = read_pid(self.pidfile)
        if pid and pid_alive(pid) and process_matches(pid, self.marker):
            return pid
        return None

    def stale(self) -> int | None:
        """Return the pid recorded in a pid file that no longer names a live lab process."""
        pid = read_pid(self.pidfile)
        if self.pidfile.exists() and not (pid and pid_alive(pid) and process_matches(pid, self.marker)):
            return pid or -1
        return None

    def clean(self) -> str | None:
        """Remove a stale pid file; return a line saying so."""
        pid = self.stale()
        if pid is None:
            return None
        self.pidfile.unlink(missing_ok=True)
        what = f"pid {pid} is not running" if pid > 0 else "it held no pid"
        if pid > 0 and pid_alive(pid):
            what = f"pid {pid} belongs to another program, which was left alone"
        return f"{self.name}: removed stale pid file {self.pidfile} ({what})"

    def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process (SIGKILL after ``timeout``); return its pid, or None if not running."""
        pid = self.pid()
        if pid is None:
            return None
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: not pid_alive(pid), timeout):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(pid), 5)
        self.pidfile.unlink(missing_ok=True)
        return pid

    def kill(self) -> int | None:
        """SIGKILL the process the way a crash would; keep the pid file, as a crash would."""
        pid = self.pid()
        if pid is None:
            return None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 5)
        return pid


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def spawn(argv: list[str], *, pidfile: Path, logfile: Path, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Start a long-running program detached from our session, logging to ``logfile``."""
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def start_and_wait(
    argv: list[str], *, what: str, answers, pidfile: Path, logfile: Path, cwd: Path, timeout: float = 30
) -> int:
    """Spawn a server and wait until it answers; on failure say why, with the end of its log."""
    proc = spawn(argv, pidfile=pidfile, logfile=logfile, cwd=cwd)
    if wait_for(lambda: proc.poll() is not None or answers(), timeout) and proc.poll() is None:
        return proc.pid
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    pidfile.unlink(missing_ok=True)
    try:
        tail = [line for line in logfile.read_text(errors="replace").splitlines() if line.strip()][-1]
    except (OSError, IndexError):
        tail = "no output"
    state = f"exited with code {proc.returncode}" if proc.returncode and proc.returncode > 0 else "did not answer"
    raise LabError(f"{what} {state} within {timeout:.0f} s: {tail} (log: {logfile})")


def run(
    argv: list[str],
    *,
    what: str,
    user: str | None = None,
    env: dict | None = None,
    cwd: str | Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run a short command; raise LabError with its output when it fails."""
    kwargs = {}
    if user:
        kwargs = {"user": user, "group": user, "extra_groups": []}
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False, **kwargs
        )
    except FileNotFoundError:
        raise LabError(f"{what}: {argv[0]} not found; install it (scripts/setup does) and retry") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{what}: '{' '.join(argv[:3])} …' did not finish in {timeout:.0f} s") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        alerts = [
            line
            for line in output
            if ("ALERT" in line or "FATAL" in line or "error" in line.lower()) and not line.endswith("Continuing.")
        ]
        detail = (alerts or output or [f"exit code {result.returncode}"])[0 if alerts else -1]
        raise LabError(f"{what} failed: {detail}")
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m mttr.lab.process stop --pidfile P --marker M``: a service's own stop command.

    Stops the process only when its pid file names a live process that is the service's own
    (``marker`` in its command line or as its working directory); a stale pid file is removed.
    Nothing running is not an error: a stop before a start must work after a crash too.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mttr.lab.process", description=main.__doc__.splitlines()[0])
    parser.add_argument("action", choices=["stop"])
    parser.add_argument("--pidfile", required=True, type=Path)
    parser.add_argument("--marker", required=True, help="a path only the service's process has (its entry point)")
    parser.add_argument("--name", default="the service")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGTERM becomes SIGKILL")
    args = parser.parse_args(argv)
    tracked = Tracked(args.name, args.pidfile, args.marker)
    pid = tracked.terminate(args.timeout)
    if pid:
        print(f"Stopped {args.name} (pid {pid})")
    else:
        print(tracked.clean() or f"{args.name} was not running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
