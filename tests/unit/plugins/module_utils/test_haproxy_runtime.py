"""The runtime API client against a real HAProxy started by the test."""

import shutil
import socket
import subprocess
import time

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime, HAProxyRuntimeError

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def haproxy(tmp_path):
    sock = tmp_path / "admin.sock"
    port, backend_port = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "global\n"
        f"    stats socket {sock} mode 600 level admin\n"
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n"
        f"frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
        f"backend be\n    server s1 127.0.0.1:{backend_port}\n    server s2 127.0.0.1:{backend_port} disabled\n"
    )
    proc = subprocess.Popen([HAPROXY, "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    yield HAProxyRuntime(str(sock))
    proc.terminate()
    proc.wait(5)


def test_servers_state_lists_each_server(haproxy):
    rows = {row["srv_name"]: row for row in haproxy.servers_state("be")}
    assert set(rows) == {"s1", "s2"}
    # srv_admin_state bit 0x01 is "forced maintenance" (the 'disabled' keyword)
    assert int(rows["s2"]["srv_admin_state"]) & 0x01
    assert not int(rows["s1"]["srv_admin_state"]) & 0x01


def test_server_status_follows_runtime_changes(haproxy):
    assert haproxy.server_status("be") == {"s1": "no check", "s2": "MAINT"}
    haproxy.command("set server be/s1 state maint")
    haproxy.command("set server be/s2 state ready")
    assert haproxy.server_status("be") == {"s1": "MAINT", "s2": "no check"}


def test_unreachable_socket_says_so(tmp_path):
    client = HAProxyRuntime(str(tmp_path / "missing.sock"))
    with pytest.raises(HAProxyRuntimeError, match="is HAProxy running"):
        client.command("show info")
