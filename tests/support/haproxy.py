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


class HttpHAProxy:
    """HAProxy with an HTTP frontend and a backend ``be`` of health-checked servers (``{name: port}``), as the lab's
    app backend is (``option httpchk GET /health``); its runtime API on ``socket``, its frontend on ``url``."""

    def __init__(self, directory, servers: dict[str, int]):
        directory = Path(directory)
        self.socket = directory / "admin.sock"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        lines = "".join(f"    server {name} 127.0.0.1:{port} check\n" for name, port in servers.items())
        cfg = directory / "haproxy.cfg"
        cfg.write_text(
            "global\n"
            f"    stats socket {self.socket} mode 600 level admin\n"
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n"
            "    timeout check 1s\n"
            f"frontend fe\n    bind 127.0.0.1:{self.port}\n    default_backend be\n"
            "backend be\n    option httpchk GET /health\n    http-check expect status 200\n"
            f"    default-server inter 200ms fall 2 rise 1\n{lines}"
        )
        self.process = subprocess.Popen([HAPROXY, "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)
