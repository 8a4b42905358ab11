# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for HAProxy's runtime API (the admin ``stats socket``)."""

from __future__ import annotations

import socket


class HAProxyRuntimeError(Exception):
    """The runtime API could not be reached or refused a command."""


class HAProxyRuntime:
    def __init__(self, socket_path, timeout=2.0):
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, line):
        """Send one command in non-interactive mode and return HAProxy's whole answer."""
        chunks = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
                sock.sendall(line.rstrip("\n").encode() + b"\n")
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except OSError as exc:
            raise HAProxyRuntimeError(
                f"HAProxy runtime API at {self.socket_path} is not answering ({exc}): is HAProxy running?"
            ) from None
        return b"".join(chunks).decode(errors="replace")

    def servers_state(self, backend=None):
        """Return ``show servers state`` as a list of dicts keyed by HAProxy's column names."""
        answer = self.command("show servers state" + (f" {backend}" if backend else ""))
        # The answer is a format version line, a "# column ..." header, then one line per server.
        lines = [line for line in answer.splitlines() if line.strip()]
        starts = [index for index, line in enumerate(lines) if line.startswith("#")]
        if not starts:
            raise HAProxyRuntimeError(f"unexpected answer to 'show servers state': {answer.strip()[:200]}")
        columns = lines[starts[0]].lstrip("# ").split()
        return [dict(zip(columns, line.split())) for line in lines[starts[0] + 1 :]]

    def server_status(self, backend):
        """Return ``{server: 'UP'|'DOWN'|'MAINT'|'DRAIN'|...}`` for one backend from ``show stat``."""
        answer = self.command("show stat")
        lines = answer.splitlines()
        if not lines or not lines[0].startswith("# "):
            raise HAProxyRuntimeError(f"unexpected answer to 'show stat': {answer.strip()[:200]}")
        columns = lines[0][2:].split(",")
        result = {}
        for line in lines[1:]:
            row = dict(zip(columns, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") not in ("BACKEND", "FRONTEND", None):
                result[row["svname"]] = row.get("status", "")
        return result
