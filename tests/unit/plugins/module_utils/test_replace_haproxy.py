"""The HAProxy replace engine against a real HAProxy (HTTP health checks) and real instances it starts."""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime
from ansible_collections.mttr.recovery.plugins.module_utils.processes import pid_alive
from ansible_collections.mttr.recovery.plugins.module_utils.replace_common import ReplaceError, wait_until
from ansible_collections.mttr.recovery.plugins.module_utils.replace_haproxy import HAProxyReplace, fill, port_free
from ansible_collections.mttr.recovery.tests.support import instance
from ansible_collections.mttr.recovery.tests.support.haproxy import HttpHAProxy
from ansible_collections.mttr.recovery.tests.support.processes import free_port, run_process


def run(argv):
    return run_process(argv, None)


@pytest.fixture
def ports():
    """Candidate ports for replacements (free now)."""
    return [free_port(), free_port(), free_port()]


@pytest.fixture(autouse=True)
def stop_instances(tmp_path):
    """Every instance a test started (their pid files are in tmp_path) is stopped afterwards, whatever happened."""
    yield
    for pidfile in tmp_path.glob("*.pid"):
        pid = int(pidfile.read_text().strip() or 0)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


def start_instance(tmp_path, name, port):
    rc, _out, err = run(instance_command(tmp_path, name=name, port=port))
    assert rc == 0, err


def instance_command(tmp_path, *extra, name="{name}", port="{port}"):
    return [sys.executable, instance.SCRIPT, "--port", str(port), "--pidfile", f"{tmp_path}/{name}.pid", *extra]


@pytest.fixture
def dead_backend(tmp_path):
    """HAProxy whose backend has one live server (s1) and one dead one (s2: nothing listens on its port)."""
    live = free_port()
    start_instance(tmp_path, "s1", live)
    server = HttpHAProxy(tmp_path, {"s1": live, "s2": free_port()})
    yield server
    server.stop()


def engine(server, tmp_path, ports, *extra, **kwargs):
    return HAProxyReplace(
        str(server.socket),
        "be",
        instance_command(tmp_path, *extra),
        ports,
        run,
        pidfile=f"{tmp_path}/{{name}}.pid",
        timeout=kwargs.pop("timeout", 10),
        **kwargs,
    )


def status(server):
    return HAProxyRuntime(str(server.socket)).server_status("be")


def health_of(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
        return json.load(response)


@pytest.mark.integration
def test_dead_server_is_replaced_then_nothing_changes(dead_backend, tmp_path, ports):
    result = engine(dead_backend, tmp_path, ports).replace()
    assert result["changed"] is True and result["dead"] == ["s2"], result
    (new,) = result["started"]
    assert new["name"] == "s3" and new["port"] == ports[0] and pid_alive(new["pid"])
    assert result["added"] == ["s3"] and result["removed"] == ["s2"]
    assert result["diff"]["before"]["servers"].keys() == {"s1", "s2"}
    assert result["diff"]["after"]["servers"].keys() == {"s1", "s3"}
    # From HAProxy itself: the replacement is UP, the dead server is gone, and traffic reaches it.
    current = status(dead_backend)
    assert set(current) == {"s1", "s3"} and current["s3"].startswith("UP"), current
    assert health_of(new["port"])["port"] == new["port"]

    again = engine(dead_backend, tmp_path, ports).replace()
    assert again["changed"] is False and again["started"] == [] and "no dead server" in again["msg"], again
    assert set(status(dead_backend)) == {"s1", "s3"}


@pytest.mark.integration
def test_check_mode_plans_and_changes_nothing(dead_backend, tmp_path, ports):
    before = status(dead_backend)
    result = engine(dead_backend, tmp_path, ports).replace(check_mode=True)
    assert result["changed"] is True
    assert result["plan"] == [{"replaces": "s2", "name": "s3", "address": "127.0.0.1", "port": ports[0]}]
    assert result["msg"] == f"would replace be/s2 by s3 on port {ports[0]}"
    assert result["diff"]["after"]["servers"].keys() == {"s1", "s3"}
    assert set(status(dead_backend)) == set(before)
    assert port_free("127.0.0.1", ports[0]) and not (tmp_path / "s3.pid").exists()


@pytest.mark.integration
def test_named_server_is_replaced_although_healthy(dead_backend, tmp_path, ports):
    result = engine(dead_backend, tmp_path, ports, dead=["s1", "gone"]).replace()
    assert result["dead"] == ["s1"] and result["removed"] == ["s1"], result
    assert set(status(dead_backend)) == {"s2", "s3"}


@pytest.mark.integration
def test_replacement_that_never_gets_healthy_is_stopped(dead_backend, tmp_path, ports):
    with pytest.raises(
        ReplaceError, match=r"did not answer http://127.0.0.1:\d+/health within 1 s .*it was stopped"
    ) as info:
        engine(dead_backend, tmp_path, ports, "--unhealthy", timeout=1).replace()
    assert info.value.changed is True
    pid = info.value.result["started"][0]["pid"]
    assert wait_until(lambda: not pid_alive(pid), 5), "the unhealthy replacement was left running"
    assert set(status(dead_backend)) == {"s1", "s2"}, "the backend was changed"


@pytest.mark.integration
def test_failing_start_command_is_one_line(dead_backend, tmp_path, ports):
    taken = ports[0]
    start_instance(tmp_path, "squatter", taken)
    # The port is taken after the engine chose it: the instance cannot bind and its command fails.
    replace = engine(dead_backend, tmp_path, [taken])
    replace.plan = lambda servers, dead: [{"replaces": "s2", "name": "s3", "address": "127.0.0.1", "port": taken}]
    with pytest.raises(ReplaceError, match=r"^the start command for s3 on port \d+ failed \(rc 1\): OSError") as info:
        replace.replace()
    assert info.value.changed is False


@pytest.mark.integration
def test_no_free_port_says_so(dead_backend, tmp_path):
    port = free_port()
    start_instance(tmp_path, "squatter", port)
    with pytest.raises(ReplaceError, match=rf"no free port for a replacement of be/s2 among {port}"):
        engine(dead_backend, tmp_path, [port]).replace()


@pytest.mark.integration
def test_unknown_backend_says_so(dead_backend, tmp_path, ports):
    replace = engine(dead_backend, tmp_path, ports)
    replace.backend = "nope"
    with pytest.raises(ReplaceError, match="HAProxy has no backend nope"):
        replace.replace()


def test_unreachable_runtime_api_says_so(tmp_path, ports):
    replace = HAProxyReplace(str(tmp_path / "missing.sock"), "be", ["true"], ports, run)
    with pytest.raises(ReplaceError, match=r"is not answering .*is HAProxy running"):
        replace.replace()


def test_placeholders_are_filled_and_other_braces_kept():
    assert fill("--pidfile=/run/{name}-{port}.pid {x}", "app2", 8081) == "--pidfile=/run/app2-8081.pid {x}"
