"""The runtime API client against a real HAProxy started by the test."""

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime, HAProxyRuntimeError
from ansible_collections.mttr.recovery.tests.support.haproxy import HAProxyServer


@pytest.fixture
def haproxy(tmp_path):
    server = HAProxyServer(tmp_path)
    yield HAProxyRuntime(str(server.socket))
    server.stop()


@pytest.mark.integration
def test_servers_state_lists_each_server(haproxy):
    rows = {row["srv_name"]: row for row in haproxy.servers_state("be")}
    assert set(rows) == {"s1", "s2"}
    # srv_admin_state bit 0x01 is "forced maintenance" (the 'disabled' keyword)
    assert int(rows["s2"]["srv_admin_state"]) & 0x01
    assert not int(rows["s1"]["srv_admin_state"]) & 0x01


@pytest.mark.integration
def test_server_status_follows_runtime_changes(haproxy):
    assert haproxy.server_status("be") == {"s1": "no check", "s2": "MAINT"}
    haproxy.command("set server be/s1 state maint")
    haproxy.command("set server be/s2 state ready")
    assert haproxy.server_status("be") == {"s1": "MAINT", "s2": "no check"}


def test_unreachable_socket_says_so(tmp_path):
    client = HAProxyRuntime(str(tmp_path / "missing.sock"))
    with pytest.raises(HAProxyRuntimeError, match="is HAProxy running"):
        client.command("show info")
