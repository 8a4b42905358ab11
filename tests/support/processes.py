"""Local processes for tests: a free loopback port and the engines' real command runner."""

from __future__ import annotations

import os
import socket
import subprocess


def free_port() -> int:
    """A port nothing listens on: bind to port 0, note the port, close."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_process(argv, env, timeout: float = 120):
    """The engines' runner: ``run(argv, env) -> (rc, stdout, stderr)`` through a real subprocess.

    ``env`` updates the environment, as AnsibleModule.run_command does.
    """
    result = subprocess.run(
        [str(arg) for arg in argv],
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr
