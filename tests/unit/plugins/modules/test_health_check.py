"""The health_check module through the unit-test harness, against real listeners on 127.0.0.1."""

from __future__ import annotations

import functools
import json
import time

import pytest

from ansible_collections.mttr.recovery.plugins.modules import health_check
from ansible_collections.mttr.recovery.tests.support.listeners import SilentListener, TargetServer
from ansible_collections.mttr.recovery.tests.support.postgres import PostgresServer
from ansible_collections.mttr.recovery.tests.support.processes import free_port
from ansible_collections.mttr.recovery.tests.unit.plugins.modules.utils import AnsibleFailJson, module_outcome

# The exception the module ended with: its result in ``.result``, the AnsibleModule in ``.module``.
run_module = functools.partial(module_outcome, health_check)


@pytest.fixture(scope="module")
def web():
    server = TargetServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def silent():
    listener = SilentListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer(user="mttr", password="m0dule-Pa55word#x")
    yield server
    server.stop()


def healthy_probes(web, silent):
    return [
        {"name": "front", "kind": "http", "url": web.url("/json"), "json_path": "status", "json_value": "ok"},
        {"name": "socket", "kind": "tcp", "host": "127.0.0.1", "port": silent.port},
        {"name": "resolver", "kind": "dns", "host": "localhost", "addresses": ["127.0.0.1"]},
        {"name": "cmd", "kind": "command", "argv": "sh -c 'echo ready'", "stdout_regex": "^ready$"},
    ]


def dead_port_probe(name="dead-port", **fields):
    return dict({"name": name, "kind": "tcp", "host": "127.0.0.1", "port": free_port(), "timeout": 1}, **fields)


@pytest.mark.integration
def test_healthy_call(web, silent):
    result = run_module({"probes": healthy_probes(web, silent)}).result
    assert result["changed"] is False
    assert result["status"] == "healthy", result["failing"]
    assert result["counts"] == {"healthy": 4, "degraded": 0, "down": 0}
    assert result["total"] == 4 and result["failing"] == [] and result["rounds"] == 1
    assert result["msg"] == "healthy: 4 healthy, 0 degraded, 0 down"
    assert [p["name"] for p in result["probes"]] == ["front", "socket", "resolver", "cmd"]
    assert result["probes"][3]["details"]["stdout"] == "ready\n"
    assert result["deadline_reached"] is False
    assert result["latency_p50_ms"] is not None and result["latency_p95_ms"] >= result["latency_p50_ms"]
    assert "failed" not in result


@pytest.mark.integration
def test_fail_on_down_names_the_failing_probes(web):
    probes = [
        {"name": "front", "kind": "http", "url": web.url("/ok")},
        dead_port_probe(),
        {"name": "api", "kind": "http", "url": web.url("/status/502")},
    ]
    error = run_module({"probes": probes, "fail_on": "down"}, AnsibleFailJson)
    result = error.result
    assert result["failed"] is True and result["status"] == "down"
    assert result["msg"].startswith("down: 1 healthy, 0 degraded, 2 down; failing: ")
    assert "dead-port: down (Connection refused)" in result["msg"]
    assert "api: down (HTTP 502, expected 200)" in result["msg"]
    assert "front" not in result["msg"]
    assert result["failing"] == ["dead-port: down (Connection refused)", "api: down (HTTP 502, expected 200)"]
    assert result["changed"] is False and "exception" not in result


@pytest.mark.integration
def test_fail_on_never_only_reports(web):
    result = run_module({"probes": [dead_port_probe()], "fail_on": "never"}).result
    assert result["status"] == "down" and result["failing"] == ["dead-port: down (Connection refused)"]
    assert "failed" not in result
    result = run_module({"probes": [dead_port_probe()]}).result  # never is the default
    assert result["status"] == "down"


@pytest.mark.integration
def test_fail_on_levels_with_a_non_critical_probe_down(web):
    probes = [{"name": "front", "kind": "http", "url": web.url("/ok")}, dead_port_probe(critical=False)]
    result = run_module({"probes": probes, "fail_on": "down"}).result
    assert result["status"] == "degraded"
    error = run_module({"probes": probes, "fail_on": "degraded"}, AnsibleFailJson)
    assert error.result["msg"].startswith("degraded: 1 healthy, 0 degraded, 1 down; failing: dead-port: down")


@pytest.mark.integration
def test_degraded_by_latency(web):
    probes = [{"name": "slow", "kind": "http", "url": web.url("/slow/250"), "latency_threshold_ms": 50}]
    error = run_module({"probes": probes, "fail_on": "degraded"}, AnsibleFailJson)
    assert error.result["status"] == "degraded" and error.result["counts"]["degraded"] == 1
    assert "slow: degraded (latency " in error.result["msg"]


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        (
            [{"name": "web", "kind": "http", "url": "http://127.0.0.1/"}, {"name": "db", "kind": "tcp", "host": "h"}],
            "probe 1 ('db'): kind tcp needs 'port'",
        ),
        (
            [
                {"name": "a", "kind": "dns", "host": "h"},
                {"name": "b", "kind": "dns", "host": "h"},
                {"name": "db", "kind": "tcp", "host": "h", "port": 1, "url": "http://h/"},
            ],
            "probe 2 ('db'): unknown field 'url' for kind tcp",
        ),
        (
            [{"name": "cmd", "kind": "command", "argv": ["true"], "stdout_regex": "(["}],
            "probe 0 ('cmd'): stdout_regex is not a valid regular expression",
        ),
        (
            [{"name": "web", "kind": "http", "url": "http://h/", "json_value": 1}],
            "probe 0 ('web'): json_value needs json_path",
        ),
        ([{"name": "db", "kind": "tcp", "host": "h", "port": 99999}], "probe 0 ('db'): port 99999 is out of range"),
        ([{"name": "db", "kind": "tcp", "host": "h", "port": 1, "timeout": -1}], "probe 0 ('db'): timeout must be"),
        (
            [{"name": "x", "kind": "dns", "host": "h"}, {"name": "x", "kind": "dns", "host": "h"}],
            "probe 1 ('x'): name 'x' is used by another probe",
        ),
    ],
)
def test_bad_probe_definition_fails_naming_the_probe(probes, message):
    result = run_module({"probes": probes}, AnsibleFailJson).result
    assert result["msg"].startswith(message), result["msg"]
    assert "exception" not in result and "Traceback" not in result["msg"]
    assert "probes" not in result  # nothing ran


def test_bad_defaults_fail_naming_the_probe():
    probes = [{"name": "db", "kind": "tcp", "host": "h", "port": 1}]
    result = run_module({"probes": probes, "defaults": {"retries": -2}}, AnsibleFailJson).result
    assert result["msg"] == "probe 0 ('db'): retries and backoff cannot be negative"


def test_option_unknown_to_every_kind_is_refused_by_the_argument_spec():
    probes = [{"name": "db", "kind": "tcp", "host": "h", "port": 1, "colour": "blue"}]
    result = run_module({"probes": probes}, AnsibleFailJson).result
    assert "colour" in result["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1, got 0"),
        ({"concurrency": -4}, "concurrency must be at least 1, got -4"),
        ({"min_consecutive": 0}, "min_consecutive must be at least 1, got 0"),
        ({"deadline": -1}, "deadline cannot be negative, got -1.0"),
        ({"interval": -0.5}, "interval cannot be negative, got -0.5"),
    ],
)
def test_bad_module_options(args, message):
    probes = [{"name": "db", "kind": "tcp", "host": "h", "port": 1}]
    result = run_module(dict(args, probes=probes), AnsibleFailJson).result
    assert result["msg"] == message


@pytest.mark.integration
def test_check_mode_gives_the_same_result(web, silent):
    args = {"probes": healthy_probes(web, silent)}
    normal = run_module(args).result
    checked = run_module(dict(args, _ansible_check_mode=True))
    assert checked.module.check_mode is True
    assert checked.result["changed"] is False
    for key in ("status", "counts", "total", "failing", "rounds", "msg"):
        assert checked.result[key] == normal[key], key
    assert [p["status"] for p in checked.result["probes"]] == [p["status"] for p in normal["probes"]]


@pytest.mark.integration
def test_postgres_password_never_returned(pg):
    wrong = "Wr0ng-pa55word-zz"
    probes = [
        pg.probe(name="primary", expect_role="primary", query="SELECT 7", expected=7),
        pg.probe(name="wrong password", password=wrong),
        {"name": "from defaults", "kind": "postgres", "host": "127.0.0.1", "port": pg.port, "user": pg.user},
    ]
    error = run_module({"probes": probes, "defaults": {"password": pg.password}, "fail_on": "down"}, AnsibleFailJson)
    result = error.result
    statuses = {p["name"]: (p["status"], p["error"]) for p in result["probes"]}
    assert statuses["primary"] == ("healthy", None)
    assert statuses["from defaults"] == ("healthy", None)
    assert statuses["wrong password"][0] == "down"
    assert "password authentication failed" in statuses["wrong password"][1]
    assert result["probes"][0]["details"]["role"] == "primary"
    text = json.dumps(result)
    assert pg.password not in text
    assert wrong not in text


@pytest.mark.integration
def test_command_probes_use_the_module_runner(web):
    probes = [
        {"name": "env", "kind": "command", "argv": ["sh", "-c", "echo $PROBE_PORT"], "env": {"PROBE_PORT": 5432}},
        {"name": "rc", "kind": "command", "argv": "sh -c 'echo oops >&2; exit 2'"},
        {"name": "hang", "kind": "command", "argv": ["sleep", "10"], "timeout": 0.3},
        {"name": "missing", "kind": "command", "argv": ["no-such-command-mttr"]},
    ]
    started = time.monotonic()
    result = run_module({"probes": probes}).result
    assert time.monotonic() - started < 5
    by_name = {p["name"]: p for p in result["probes"]}
    assert by_name["env"]["status"] == "healthy" and by_name["env"]["details"]["stdout"] == "5432\n"
    assert by_name["rc"]["error"] == "exit code 2, expected 0: oops"
    assert by_name["hang"]["error"] == "timed out after 0.3 s"
    assert by_name["missing"]["error"] == "command not found: no-such-command-mttr"


@pytest.mark.integration
def test_defaults_apply_to_every_probe(silent):
    probes = [{"name": "hung", "kind": "http", "url": f"http://127.0.0.1:{silent.port}/"}]
    result = run_module({"probes": probes, "defaults": {"timeout": 0.2, "retries": 1, "backoff": 0.05}}).result
    (probe,) = result["probes"]
    assert probe["status"] == "down" and probe["attempts"] == 2
    assert probe["error"] == "timed out after 0.2 s"


@pytest.mark.integration
def test_wait_for_healthy_catches_a_service_coming_up():
    server = TargetServer()
    try:
        server.ready_at = time.monotonic() + 0.5
        probes = [{"name": "ready", "kind": "http", "url": server.url("/ready")}]
        args = {"probes": probes, "wait_for": "healthy", "deadline": 10, "interval": 0.1, "min_consecutive": 2}
        result = run_module(dict(args, fail_on="down")).result
    finally:
        server.close()
    assert result["status"] == "healthy" and result["deadline_reached"] is False
    assert result["consecutive_healthy"] == 2 and result["rounds"] >= 3
    assert result["elapsed_s"] >= 0.4


def test_wait_for_healthy_gives_up_at_the_deadline():
    args = {"probes": [dead_port_probe()], "wait_for": "healthy", "deadline": 0.3, "interval": 0.1}
    result = run_module(dict(args, fail_on="down"), AnsibleFailJson).result
    assert result["deadline_reached"] is True and result["rounds"] >= 2
    assert "dead-port: down" in result["msg"]


@pytest.mark.integration
def test_concurrency_option_limits_parallel_probes():
    server = TargetServer()
    try:
        probes = [{"name": f"w{i}", "kind": "http", "url": server.url("/work")} for i in range(6)]
        result = run_module({"probes": probes, "concurrency": 3}).result
    finally:
        server.close()
    assert result["counts"]["healthy"] == 6
    assert 1 < server.max_active <= 3
