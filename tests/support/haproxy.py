"""A throwaway HAProxy: a TCP frontend to a backend of two servers (s2 disabled), its runtime API on a socket."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from ansible_collections.mttr.recovery.tests.support.processes import free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class HAProxyServer:
    """HAProxy started from a configuration in ``directory``, with ``socket`` its admin-level runtime API."""

    def __init__(self, directory):
        directory = Path(directory)
        self.socket = directory / "admin.sock"
        port, backend_port = free_port(), free_port()
        cfg = directory / "haproxy.cfg"
        cfg.write_text(
            "global\n"
            f"    stats socket {self.socket} mode 600 level admin\n"
            "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n"
            f"frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
            f"backend be\n    server s1 127.0.0.1:{backend_port}\n    server s2 127.0.0.1:{backend_port} disabled\n"
        )
        self.process = subprocess.Popen([HAPROXY, "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)
