"""The probe engine against real listeners on 127.0.0.1: HTTP(S), raw TCP, PostgreSQL, commands and DNS."""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.probes import (
    DEGRADED,
    DOWN,
    HEALTHY,
    ProbeSpecError,
    check,
    failing,
    format_lines,
    normalize,
    percentile,
    run_probe,
    run_probes,
    summarize,
)
from ansible_collections.mttr.recovery.tests.support.listeners import (
    JSON_DOC,
    SelfSignedCert,
    SilentListener,
    TargetServer,
)
from ansible_collections.mttr.recovery.tests.support.postgres import PostgresServer
from ansible_collections.mttr.recovery.tests.support.processes import free_port, run_process

# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def web():
    server = TargetServer()
    yield server
    server.close()


@pytest.fixture
def fresh_web():
    """A server of its own, for tests that read its counters or stop it."""
    server = TargetServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cert():
    certificate = SelfSignedCert()
    yield certificate
    certificate.remove()


@pytest.fixture(scope="module")
def tls_web(cert):
    server = TargetServer(tls=cert.server_context())
    yield server
    server.close()


@pytest.fixture(scope="module")
def silent():
    listener = SilentListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer(user="mttr", password="pr0be-S3cret!pw")
    yield server
    server.stop()


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def one(probe, defaults=None, **kwargs):
    """Normalize one probe definition and run it."""
    (spec,) = normalize([probe], defaults)
    return run_probe(spec, **kwargs)


def http(url, **fields):
    return dict({"kind": "http", "url": url, "timeout": 2}, **fields)


# ----------------------------------------------------------------------------- normalize: bad input

GOOD = [
    {"name": "good-0", "kind": "tcp", "host": "127.0.0.1", "port": 80},
    {"name": "good-1", "kind": "http", "url": "http://127.0.0.1/"},
]

BAD_PROBES = [
    pytest.param({"name": "bad", "kind": "ftp", "host": "x"}, "unknown kind 'ftp'", id="unknown-kind"),
    pytest.param({"name": "bad", "host": "x"}, "unknown kind None", id="no-kind"),
    pytest.param({"name": "bad", "kind": "http"}, "kind http needs 'url'", id="http-no-url"),
    pytest.param({"name": "bad", "kind": "tcp", "port": 80}, "kind tcp needs 'host'", id="tcp-no-host"),
    pytest.param({"name": "bad", "kind": "tcp", "host": "h"}, "kind tcp needs 'port'", id="tcp-no-port"),
    pytest.param({"name": "bad", "kind": "postgres", "host": "h"}, "kind postgres needs 'port'", id="pg-no-port"),
    pytest.param({"name": "bad", "kind": "command"}, "kind command needs 'argv'", id="command-no-argv"),
    pytest.param({"name": "bad", "kind": "command", "argv": []}, "kind command needs 'argv'", id="command-empty"),
    pytest.param({"name": "bad", "kind": "command", "argv": ""}, "kind command needs 'argv'", id="command-blank"),
    pytest.param({"name": "bad", "kind": "dns", "host": ""}, "kind dns needs 'host'", id="dns-empty-host"),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": 1, "timeout": 0}, "timeout must be positive", id="timeout-0"
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": 1, "timeout": -2.5},
        "timeout must be positive, got -2.5",
        id="timeout-negative",
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": 1, "timeout": "soon"},
        "'timeout' must be a number, got 'soon'",
        id="timeout-text",
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": 1, "retries": -1},
        "retries and backoff cannot be negative",
        id="retries-negative",
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": 1, "backoff": -0.1},
        "retries and backoff cannot be negative",
        id="backoff-negative",
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": 1, "retries": 1.5},
        "'retries' must be an integer, got float",
        id="retries-float",
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": 1, "latency_threshold_ms": 0},
        "latency_threshold_ms must be positive",
        id="threshold-0",
    ),
    pytest.param({"name": "bad", "kind": "tcp", "host": "h", "port": 0}, "port 0 is out of range", id="port-0"),
    pytest.param(
        {"name": "bad", "kind": "postgres", "host": "h", "port": 70000}, "port 70000 is out of range", id="port-high"
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": "http"}, "'port' must be a number", id="port-text"
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": True},
        "'port' must be an integer, got a boolean",
        id="port-bool",
    ),
    pytest.param(
        {"name": "bad", "kind": "tcp", "host": "h", "port": 1, "url": "http://h/"},
        "unknown field 'url' for kind tcp",
        id="field-of-other-kind",
    ),
    pytest.param(
        {"name": "bad", "kind": "dns", "host": "h", "colour": "blue"},
        "unknown field 'colour' for kind dns",
        id="unknown-field",
    ),
    pytest.param(
        {"name": "bad", "kind": "http", "url": "http://h/", "body_regex": "(unclosed"},
        "body_regex is not a valid regular expression",
        id="bad-body-regex",
    ),
    pytest.param(
        {"name": "bad", "kind": "command", "argv": ["true"], "stdout_regex": "[a-"},
        "stdout_regex is not a valid regular expression",
        id="bad-stdout-regex",
    ),
    pytest.param(
        {"name": "bad", "kind": "http", "url": "http://h/", "json_value": "ok"},
        "json_value needs json_path",
        id="json-value-no-path",
    ),
    pytest.param({"name": "bad", "kind": "http", "url": "ftp://h/"}, "url must start with http://", id="url-scheme"),
    pytest.param(
        {"name": "bad", "kind": "http", "url": "http://h/", "status": ["ok"]},
        "'status' must be a number, got 'ok'",
        id="status-text",
    ),
    pytest.param(
        {"name": "bad", "kind": "http", "url": "http://h/", "headers": ["X-A: 1"]},
        "'headers' must be a dictionary, got list",
        id="headers-list",
    ),
    pytest.param(
        {"name": "bad", "kind": "postgres", "host": "h", "port": 5432, "compare": "like"},
        "compare must be one of eq, ne, ge, gt, le, lt, regex",
        id="compare",
    ),
    pytest.param(
        {"name": "bad", "kind": "postgres", "host": "h", "port": 5432, "expect_role": "leader"},
        "expect_role must be primary or standby",
        id="expect-role",
    ),
    pytest.param({"name": "bad", "kind": "dns", "host": "h", "family": "ipv5"}, "family must be any", id="family"),
    pytest.param(
        {"name": "good-0", "kind": "dns", "host": "h"}, "name 'good-0' is used by another probe", id="duplicate-name"
    ),
    pytest.param({"name": 7, "kind": "dns", "host": "h"}, "'name' must be a string, got int", id="name-int"),
    pytest.param("tcp://h:1", "must be a dictionary, got str", id="not-a-dict"),
    pytest.param(["tcp", "h", 1], "must be a dictionary, got list", id="list-not-dict"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_PROBES)
def test_normalize_rejects_bad_probe_naming_it(bad, message):
    with pytest.raises(ProbeSpecError) as info:
        normalize([*GOOD, bad])
    label = f"probe 2 ({bad['name']!r})" if isinstance(bad, dict) else "probe 2"
    assert str(info.value).startswith(label + ": "), str(info.value)
    assert message in str(info.value)


def test_normalize_names_a_duplicate_default_name_by_index():
    twice = {"kind": "tcp", "host": "127.0.0.1", "port": 80}
    with pytest.raises(ProbeSpecError, match=r"^probe 1: name 'tcp 127.0.0.1:80' is used by another probe"):
        normalize([twice, dict(twice)])


@pytest.mark.parametrize("probes_value", [None, {"kind": "tcp"}, "probes"])
def test_normalize_wants_a_list(probes_value):
    with pytest.raises(ProbeSpecError, match="probes must be a list"):
        normalize(probes_value)


# ----------------------------------------------------------------------------- normalize: good input


def test_normalize_applies_defaults_names_and_coercion():
    specs = normalize(
        [
            {"kind": "tcp", "host": "db", "port": "5432", "critical": "no"},
            {"kind": "http", "url": "http://h:8080/health?x=1", "timeout": "1.5", "retries": 3},
            {"kind": "command", "argv": "sh -c 'exit 0'", "env": {"PORT": 5432, "DEBUG": True}},
            {"kind": "dns", "host": "localhost", "name": "resolver"},
            {"kind": "postgres", "host": "db", "port": 5432, "timeout": None},
        ],
        defaults={"timeout": 2, "retries": 1, "validate_certs": False, "password": "x", "rc": 3},
    )
    tcp, web_spec, command, dns, pg_spec = specs
    assert [s["index"] for s in specs] == [0, 1, 2, 3, 4]
    assert [s["name"] for s in specs] == [
        "tcp db:5432",
        "http http://h:8080/health?x=1",
        "command sh -c exit 0",
        "resolver",
        "postgres db:5432",
    ]
    assert tcp["port"] == 5432 and tcp["critical"] is False
    assert (tcp["timeout"], tcp["retries"], tcp["backoff"]) == (2, 1, 0.2)
    assert "validate_certs" not in tcp and "password" not in tcp  # defaults only reach kinds that have the field
    assert (web_spec["timeout"], web_spec["retries"], web_spec["validate_certs"]) == (1.5, 3, False)
    assert web_spec["status"] == [200]
    assert command["argv"] == ["sh", "-c", "exit 0"] and command["rc"] == 3
    assert command["env"] == {"PORT": "5432", "DEBUG": "True"}
    assert dns["latency_threshold_ms"] is None and dns["critical"] is True
    assert pg_spec["timeout"] == 2 and pg_spec["password"] == "x"  # None means "not set": the default applies


def test_normalize_null_defaults_do_not_break_validation():
    (spec,) = normalize([{"kind": "tcp", "host": "h", "port": 1}], {"timeout": None, "retries": None})
    assert (spec["timeout"], spec["retries"]) == (5.0, 0)


def test_normalize_coerces_status_codes_and_leaves_input_alone():
    raw = {"kind": "http", "url": "https://h/", "status": ["200", 204]}
    (spec,) = normalize([raw])
    assert spec["status"] == [200, 204]
    assert raw == {"kind": "http", "url": "https://h/", "status": ["200", 204]}


def test_normalize_empty_list_is_fine():
    assert normalize([]) == []
    assert run_probes([]) == []


# ----------------------------------------------------------------------------- http


@pytest.mark.integration
def test_http_healthy(web):
    result = one(http(web.url("/ok"), name="front", labels={"tier": "web"}))
    assert result["status"] == HEALTHY, result
    assert result["error"] is None and result["attempts"] == 1
    assert result["details"] == {"status_code": 200}
    assert result["labels"] == {"tier": "web"} and result["name"] == "front" and result["kind"] == "http"
    assert 0 <= result["latency_ms"] < 2000


@pytest.mark.integration
def test_http_wrong_status_is_down(web):
    result = one(http(web.url("/status/500")))
    assert result["status"] == DOWN
    assert result["error"] == "HTTP 500, expected 200"
    assert result["details"] == {"status_code": 500}


@pytest.mark.integration
def test_http_expected_statuses(web):
    assert one(http(web.url("/status/503"), status=[200, 503]))["status"] == HEALTHY
    result = one(http(web.url("/ok"), status=[204, 301]))
    assert result["status"] == DOWN and result["error"] == "HTTP 200, expected 204, 301"


@pytest.mark.integration
def test_http_body_regex(web):
    assert one(http(web.url("/ok"), body_regex=r"^all\s+good$"))["status"] == HEALTHY
    result = one(http(web.url("/ok"), body_regex="broken"))
    assert result["status"] == DOWN and result["error"] == "body does not match /broken/"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "value"),
    [("status", "ok"), ("version", 3), ("items.1.id", 9), ("checks.db", True), ("checks", {"db": True})],
)
def test_http_json_path_and_value_match(web, path, value):
    result = one(http(web.url("/json"), json_path=path, json_value=value))
    assert result["status"] == HEALTHY, result
    assert result["details"]["json_value"] == value


@pytest.mark.integration
def test_http_json_path_alone_reports_the_value(web):
    result = one(http(web.url("/json"), json_path="items.0"))
    assert result["status"] == HEALTHY and result["details"]["json_value"] == JSON_DOC["items"][0]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"json_path": "status", "json_value": "degraded"}, "JSON status is 'ok', expected 'degraded'"),
        ({"json_path": "version", "json_value": "3"}, "JSON version is 3, expected '3'"),
        ({"json_path": "nope"}, "JSON path nope: 'nope' not found"),
        ({"json_path": "items.5.id"}, "JSON path items.5.id: '5' not found"),
        ({"json_path": "status.deeper"}, "JSON path status.deeper: 'deeper' not found"),
    ],
)
def test_http_json_mismatch_is_down(web, fields, error):
    result = one(http(web.url("/json"), **fields))
    assert result["status"] == DOWN
    assert result["error"] == error


@pytest.mark.integration
def test_http_body_that_is_not_json(web):
    result = one(http(web.url("/text"), json_path="status"))
    assert result["status"] == DOWN
    assert result["error"].startswith("JSON path status: Expecting value")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "value"), [("method", "PUT"), ("query", "verbose=1"), ("token", "t-42"), ("body", "ping")]
)
def test_http_method_headers_body_and_query_reach_the_server(web, path, value):
    probe = http(web.url("/echo?verbose=1"), method="PUT", headers={"X-Token": "t-42"}, body="ping")
    result = one(dict(probe, json_path=path, json_value=value))
    assert result["status"] == HEALTHY, result


@pytest.mark.integration
def test_http_refused(web):
    port = free_port()
    result = one(http(f"http://127.0.0.1:{port}/"))
    assert result["status"] == DOWN
    assert "refused" in result["error"].lower()
    assert result["details"] == {}


@pytest.mark.integration
def test_http_server_that_never_answers_times_out(silent):
    started = time.monotonic()
    result = one(http(f"http://127.0.0.1:{silent.port}/health", timeout=0.3))
    assert time.monotonic() - started < 2
    assert result["status"] == DOWN
    assert result["error"] == "timed out after 0.3 s"


@pytest.mark.integration
def test_http_slow_response_over_threshold_is_degraded(web):
    result = one(http(web.url("/slow/300"), latency_threshold_ms=100))
    assert result["status"] == DEGRADED
    assert result["latency_ms"] >= 300
    assert result["error"].startswith("latency ") and result["error"].endswith(" ms exceeds 100 ms")
    assert one(http(web.url("/ok"), latency_threshold_ms=2000))["status"] == HEALTHY


@pytest.mark.integration
def test_http_slower_than_timeout_is_down_not_degraded(web):
    result = one(http(web.url("/slow/800"), timeout=0.2, latency_threshold_ms=100))
    assert result["status"] == DOWN and "timed out" in result["error"]


@pytest.mark.integration
def test_https_without_verification(tls_web):
    result = one(http(tls_web.url("/json"), validate_certs=False, json_path="status", json_value="ok"))
    assert result["status"] == HEALTHY, result


@pytest.mark.integration
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_https_verified_against_ca_path(tls_web, cert, host):
    result = one(http(tls_web.url("/ok", host=host), ca_path=str(cert.cert_path)))
    assert result["status"] == HEALTHY, result


@pytest.mark.integration
def test_https_self_signed_is_refused_by_default(tls_web):
    result = one(http(tls_web.url("/ok")))
    assert result["status"] == DOWN
    assert "CERTIFICATE_VERIFY_FAILED" in result["error"]


@pytest.mark.integration
def test_https_to_a_plain_http_server_is_down(web):
    result = one(http(web.url("/ok").replace("http://", "https://"), validate_certs=False))
    assert result["status"] == DOWN and result["error"]


# ----------------------------------------------------------------------------- tcp


@pytest.mark.integration
def test_tcp_listening_socket(silent):
    result = one({"kind": "tcp", "host": "127.0.0.1", "port": silent.port})
    assert result["status"] == HEALTHY and result["details"] == {} and result["name"] == f"tcp 127.0.0.1:{silent.port}"


def test_tcp_refused():
    result = one({"kind": "tcp", "host": "127.0.0.1", "port": free_port(), "timeout": 1})
    assert result["status"] == DOWN
    assert result["error"] == "Connection refused"


# ----------------------------------------------------------------------------- retries and backoff


def test_retries_count_attempts_and_backoff_doubles():
    clock = FakeClock()
    spec = {"kind": "tcp", "host": "127.0.0.1", "port": free_port(), "retries": 3, "backoff": 0.5}
    result = one(spec, sleep=clock.sleep)
    assert result["status"] == DOWN and result["attempts"] == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_no_retries_means_one_attempt_and_no_sleep():
    clock = FakeClock()
    result = one({"kind": "tcp", "host": "127.0.0.1", "port": free_port()}, sleep=clock.sleep)
    assert result["attempts"] == 1 and clock.sleeps == []


@pytest.mark.integration
def test_retry_succeeds_after_failures(fresh_web):
    fresh_web.scripts["flaky"] = [503, 503, 200]
    clock = FakeClock()
    result = one(http(fresh_web.url("/script/flaky"), retries=5, backoff=0.1), sleep=clock.sleep)
    assert result["status"] == HEALTHY and result["error"] is None
    assert result["attempts"] == 3
    assert clock.sleeps == [0.1, 0.2]
    assert result["details"] == {"status_code": 200}
    assert fresh_web.hits["/script/flaky"] == 3


@pytest.mark.integration
def test_retry_uses_real_sleep_by_default(fresh_web):
    fresh_web.scripts["flaky"] = [500, 200]
    started = time.monotonic()
    result = one(http(fresh_web.url("/script/flaky"), retries=1, backoff=0.2))
    assert result["status"] == HEALTHY and result["attempts"] == 2
    assert time.monotonic() - started >= 0.2


@pytest.mark.integration
def test_details_of_an_earlier_attempt_do_not_leak_into_the_last(fresh_web):
    fresh_web.scripts["gone"] = [500]
    result = one(http(fresh_web.url("/script/gone"), retries=1, backoff=0), sleep=lambda seconds: fresh_web.close())
    assert result["attempts"] == 2
    assert "refused" in result["error"].lower()
    assert result["details"] == {}  # not the first attempt's {"status_code": 500}


@pytest.mark.integration
def test_latency_is_measured_with_the_clock(web):
    ticks = iter([10.0, 10.25])
    result = one(http(web.url("/ok"), latency_threshold_ms=200), clock=lambda: next(ticks))
    assert result["latency_ms"] == 250.0 and result["status"] == DEGRADED
    assert result["error"] == "latency 250.0 ms exceeds 200 ms"


# ----------------------------------------------------------------------------- postgres (real server)


@pytest.mark.integration
def test_postgres_select_one(pg):
    result = one(pg.probe())
    assert result["status"] == HEALTHY, result
    assert result["details"] == {"value": 1}
    assert result["name"] == f"postgres 127.0.0.1:{pg.port}"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fields", "value"),
    [
        ({"query": "SELECT 41 + 1", "expected": 42}, 42),
        ({"query": "SELECT 41 + 1", "expected": "42", "compare": "eq"}, 42),
        ({"query": "SELECT 'abc'", "expected": "abd", "compare": "ne"}, "abc"),
        ({"query": "SELECT count(*) FROM pg_database", "expected": 1, "compare": "ge"}, 3),
        ({"query": "SELECT 2.5::numeric", "expected": "2", "compare": "gt"}, "2.5"),
        ({"query": "SELECT 5", "expected": 5, "compare": "le"}, 5),
        ({"query": "SELECT version()", "expected": r"^PostgreSQL 15\.", "compare": "regex"}, None),
        ({"query": "SELECT current_user", "expected": "mttr"}, "mttr"),
        ({"query": "SELECT pg_is_in_recovery()", "expected": False}, False),
        ({"dbname": "template1", "query": "SELECT current_database()", "expected": "template1"}, "template1"),
    ],
)
def test_postgres_expected_value_matches(pg, fields, value):
    result = one(pg.probe(**fields))
    assert result["status"] == HEALTHY, result
    if value is not None:
        assert result["details"]["value"] == value


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"query": "SELECT 41 + 1", "expected": 43}, "query returned '42', expected eq 43"),
        (
            {"query": "SELECT count(*) FROM pg_database", "expected": 1000, "compare": "ge"},
            "query returned '3', expected ge 1000",
        ),
        ({"query": "SELECT 'abc'", "expected": 1, "compare": "lt"}, "expected a number, got 'abc'"),
        ({"query": "SELECT version()", "expected": "^MySQL", "compare": "regex"}, "expected regex '^MySQL'"),
        ({"query": "SELECT NULL", "expected": "x"}, "query returned '', expected eq 'x'"),
        ({"query": "SELECT 1 WHERE false", "expected": 1}, "query returned '', expected eq 1"),
    ],
)
def test_postgres_expected_value_mismatch_is_down(pg, fields, error):
    result = one(pg.probe(**fields))
    assert result["status"] == DOWN
    assert error in result["error"]


@pytest.mark.integration
def test_postgres_wrong_password(pg):
    result = one(pg.probe(password="not-the-password"))
    assert result["status"] == DOWN
    assert "password authentication failed" in result["error"]
    assert "not-the-password" not in json.dumps(result)


@pytest.mark.integration
def test_postgres_query_error_and_missing_database(pg):
    result = one(pg.probe(query="SELECT * FROM no_such_table"))
    assert result["status"] == DOWN and 'relation "no_such_table" does not exist' in result["error"]
    result = one(pg.probe(dbname="no_such_db"))
    assert result["status"] == DOWN and 'database "no_such_db" does not exist' in result["error"]


@pytest.mark.integration
def test_postgres_statement_timeout(pg):
    started = time.monotonic()
    result = one(pg.probe(query="SELECT pg_sleep(5)", timeout=0.3))
    assert time.monotonic() - started < 3
    assert result["status"] == DOWN and "statement timeout" in result["error"]


def test_postgres_refused():
    result = one({"kind": "postgres", "host": "127.0.0.1", "port": free_port(), "timeout": 1})
    assert result["status"] == DOWN and "refused" in result["error"].lower()


@pytest.mark.integration
def test_postgres_expect_primary_and_report_replication(pg):
    result = one(pg.probe(expect_role="primary"))
    assert result["status"] == HEALTHY, result
    assert result["details"] == {"value": 1, "role": "primary", "in_recovery": False, "standbys": 0, "lag_bytes": 0}
    result = one(pg.probe(report_replication=True, name="report"))
    assert result["status"] == HEALTHY and result["details"]["role"] == "primary"


@pytest.mark.integration
def test_postgres_expect_standby_on_a_primary_is_down(pg):
    result = one(pg.probe(expect_role="standby"))
    assert result["status"] == DOWN
    assert result["error"] == "node is a primary, expected a standby"
    assert result["details"]["role"] == "primary"


@pytest.mark.integration
def test_postgres_max_lag_bytes_zero_still_checks_replication(pg):
    result = one(pg.probe(max_lag_bytes=0))
    assert result["status"] == HEALTHY
    assert result["details"]["role"] == "primary" and result["details"]["lag_bytes"] == 0


@pytest.mark.integration
def test_postgres_without_replication_fields_reports_no_role(pg):
    assert "role" not in one(pg.probe())["details"]


# ----------------------------------------------------------------------------- command (real runner)


def command(argv, **fields):
    return dict({"kind": "command", "argv": argv, "timeout": 5}, **fields)


def test_command_healthy_with_stdout_regex():
    result = one(command(["echo", "replication ok"], stdout_regex=r"ok$"), run_command=run_process)
    assert result["status"] == HEALTHY, result
    assert result["details"] == {"rc": 0, "stdout": "replication ok\n"}


def test_command_stdout_regex_mismatch():
    result = one(command("echo nope", stdout_regex="^yes"), run_command=run_process)
    assert result["status"] == DOWN and result["error"] == "output does not match /^yes/"


def test_command_rc_mismatch_reports_stderr_tail():
    result = one(command(["sh", "-c", "echo first >&2; echo broken pipe >&2; exit 3"]), run_command=run_process)
    assert result["status"] == DOWN
    assert result["error"] == "exit code 3, expected 0: broken pipe"
    assert result["details"]["rc"] == 3


def test_command_expected_nonzero_rc():
    result = one(command(["sh", "-c", "exit 3"], rc=3), run_command=run_process)
    assert result["status"] == HEALTHY
    result = one(command(["true"], rc=1), run_command=run_process)
    assert result["status"] == DOWN and result["error"] == "exit code 0, expected 1"


def test_command_env_is_passed():
    result = one(
        command(["sh", "-c", 'echo "port=$PROBE_PORT"'], env={"PROBE_PORT": 5432}, stdout_regex="^port=5432$"),
        run_command=run_process,
    )
    assert result["status"] == HEALTHY, result


def test_command_timeout():
    started = time.monotonic()
    result = one(command(["sleep", "10"], timeout=0.3), run_command=run_process)
    assert time.monotonic() - started < 3
    assert result["status"] == DOWN
    assert result["error"] == "timed out after 0.3 s"


def test_command_missing():
    result = one(command(["no-such-command-mttr", "--flag"]), run_command=run_process)
    assert result["status"] == DOWN
    assert result["error"] == "command not found: no-such-command-mttr"


def test_command_without_runner():
    result = one(command(["true"]))
    assert result["status"] == DOWN and result["error"] == "command probes need a command runner"


def test_command_runner_gets_the_timeout_wrapper():
    calls = []

    def recording_runner(argv, env):
        calls.append((argv, env))
        return run_process(argv, env)

    one(command(["true"], timeout=2.5, env={"A": "1"}), run_command=recording_runner)
    assert calls == [(["timeout", "--kill-after=1", "2.5", "true"], {"A": "1"})]


# ----------------------------------------------------------------------------- dns


def test_dns_localhost():
    result = one({"kind": "dns", "host": "localhost", "addresses": ["127.0.0.1"]})
    assert result["status"] == HEALTHY, result
    assert "127.0.0.1" in result["details"]["addresses"]
    assert one({"kind": "dns", "host": "localhost", "family": "ipv4"})["details"]["addresses"] == ["127.0.0.1"]


def test_dns_unresolvable_name():
    result = one({"kind": "dns", "host": "no-such-host.invalid"})
    assert result["status"] == DOWN
    assert result["error"].startswith("cannot resolve no-such-host.invalid: ")


def test_dns_expected_address_missing():
    result = one({"kind": "dns", "host": "localhost", "family": "ipv4", "addresses": ["127.0.0.1", "10.9.8.7"]})
    assert result["status"] == DOWN
    assert result["error"] == "localhost resolves to 127.0.0.1; missing 10.9.8.7"
    assert result["details"] == {"addresses": ["127.0.0.1"]}


# ----------------------------------------------------------------------------- concurrency and order


@pytest.mark.integration
def test_fifty_probes_run_concurrently(fresh_web):
    specs = normalize([http(fresh_web.url("/work"), name=f"w{i}", timeout=5) for i in range(50)])
    started = time.monotonic()
    results = run_probes(specs, concurrency=50)
    elapsed = time.monotonic() - started
    assert [r["status"] for r in results] == [HEALTHY] * 50
    assert elapsed < 5, f"50 probes of 0.2 s took {elapsed:.2f} s"  # serially they would take 10 s
    assert fresh_web.hits["/work"] == 50
    assert fresh_web.max_active > 1


@pytest.mark.integration
@pytest.mark.parametrize(("limit", "count"), [(1, 4), (5, 15), (8, 20)])
def test_concurrency_limit_is_respected(fresh_web, limit, count):
    specs = normalize([http(fresh_web.url("/work"), name=f"w{i}", timeout=5) for i in range(count)])
    started = time.monotonic()
    results = run_probes(specs, concurrency=limit)
    elapsed = time.monotonic() - started
    assert all(r["status"] == HEALTHY for r in results)
    assert fresh_web.hits["/work"] == count
    assert fresh_web.max_active <= limit
    assert elapsed >= -(-count // limit) * 0.2 * 0.9  # no faster than waves of `limit` requests of 0.2 s
    if limit > 1:
        assert fresh_web.max_active > 1


@pytest.mark.integration
def test_results_keep_input_order(web, silent):
    raw = [
        http(web.url("/slow/300"), name="slowest"),
        {"kind": "tcp", "host": "127.0.0.1", "port": silent.port, "name": "tcp"},
        http(web.url("/slow/150"), name="slow"),
        http(web.url("/status/500"), name="broken"),
        {"kind": "dns", "host": "localhost", "name": "dns"},
        {"kind": "command", "argv": ["true"], "name": "cmd"},
    ]
    results = run_probes(normalize(raw), concurrency=6, run_command=run_process)
    assert [r["name"] for r in results] == ["slowest", "tcp", "slow", "broken", "dns", "cmd"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [HEALTHY, HEALTHY, HEALTHY, DOWN, HEALTHY, HEALTHY]


@pytest.mark.integration
def test_mixed_outcomes_across_threads_each_land_on_their_probe(web):
    raw = [http(web.url("/ok" if i % 3 else "/status/404"), name=f"p{i}") for i in range(30)]
    results = run_probes(normalize(raw), concurrency=10)
    assert [r["name"] for r in results] == [f"p{i}" for i in range(30)]
    assert [r["status"] for r in results] == [HEALTHY if i % 3 else DOWN for i in range(30)]
    assert all(r["error"] == "HTTP 404, expected 200" for r in results[::3])


# ----------------------------------------------------------------------------- summarize, percentile, failing


def result_of(status, critical=True, latency=1.0, name="p"):
    return {"name": name, "status": status, "critical": critical, "latency_ms": latency, "error": None}


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        ([], HEALTHY),
        ([(HEALTHY, True), (HEALTHY, False)], HEALTHY),
        ([(HEALTHY, True), (DOWN, True)], DOWN),
        ([(HEALTHY, True), (DEGRADED, True)], DEGRADED),
        ([(HEALTHY, True), (DEGRADED, False)], DEGRADED),
        ([(HEALTHY, True), (DOWN, False)], DEGRADED),
        ([(DEGRADED, True), (DOWN, False), (DOWN, True)], DOWN),
        ([(DOWN, False), (DOWN, False)], DEGRADED),
    ],
)
def test_summarize_overall_status(statuses, overall):
    results = [result_of(status, critical) for status, critical in statuses]
    summary = summarize(results)
    assert summary["status"] == overall
    assert summary["total"] == len(results)
    assert sum(summary["counts"].values()) == len(results)


def test_summarize_counts_and_percentiles():
    results = [result_of(HEALTHY, latency=float(ms)) for ms in range(1, 21)]
    results += [result_of(DEGRADED, latency=500.0), result_of(DOWN, critical=False, latency=None)]
    summary = summarize(results)
    assert summary["counts"] == {HEALTHY: 20, DEGRADED: 1, DOWN: 1}
    assert summary["total"] == 22 and summary["status"] == DEGRADED
    assert summary["latency_p50_ms"] == 11.0  # 21 latencies (None dropped): rank ceil(10.5) = 11
    assert summary["latency_p95_ms"] == 20.0  # rank ceil(19.95) = 20
    empty = summarize([])
    assert empty["latency_p50_ms"] is None and empty["latency_p95_ms"] is None


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([None, None], 0.5, None),
        ([7], 0.5, 7),
        ([7], 0.99, 7),
        ([3, 1, 2], 0.5, 2),
        ([1, 2, 3, 4], 0.5, 2),
        (list(range(1, 11)), 0.5, 5),
        (list(range(1, 11)), 0.95, 10),
        (list(range(1, 21)), 0.95, 19),
        (list(range(1, 101)), 0.95, 95),
        (list(range(1, 101)), 0.99, 99),
        ([5, 1, None, 3], 0.0, 1),
        ([5, 1, None, 3], 1.0, 5),
        ([2.5, 0.1], 0.5, 0.1),
    ],
)
def test_percentile_nearest_rank(values, fraction, expected):
    assert percentile(values, fraction) == expected


def test_failing_lines():
    results = [
        result_of(HEALTHY, name="ok"),
        dict(result_of(DOWN, name="db"), error="Connection refused"),
        dict(result_of(DEGRADED, name="web"), error="latency 300.0 ms exceeds 100 ms"),
    ]
    assert failing(results) == ["db: down (Connection refused)", "web: degraded (latency 300.0 ms exceeds 100 ms)"]


def test_format_lines():
    result = {
        "status": DOWN,
        "counts": {HEALTHY: 1, DEGRADED: 0, DOWN: 1},
        "latency_p50_ms": 1.5,
        "latency_p95_ms": None,
        "probes": [
            {"name": "db", "status": DOWN, "latency_ms": None, "error": "Connection refused", "details": {}},
            {"name": "web", "status": HEALTHY, "latency_ms": 2.0, "error": None, "details": {"status_code": 200}},
        ],
    }
    lines = format_lines(result, width=10)
    assert lines[0].split() == ["STATUS", "PROBE", "LATENCY", "DETAIL"]
    assert lines[1].split() == ["down", "db", "-", "Connection", "refused"]
    assert lines[2].split() == ["healthy", "web", "2.0", "ms", "status_code=200"]
    assert lines[3] == "overall: down (1 healthy, 0 degraded, 1 down; p50 1.5 ms, p95 - ms)"


# ----------------------------------------------------------------------------- check(): rounds, deadline, streaks


def test_check_once_by_default():
    clock = FakeClock()
    specs = normalize([{"kind": "tcp", "host": "127.0.0.1", "port": free_port(), "name": "dead"}])
    result = check(specs, sleep=clock.sleep, clock=clock)
    assert result["status"] == DOWN and result["rounds"] == 1 and clock.sleeps == []
    assert result["deadline_reached"] is False and result["consecutive_healthy"] == 0
    assert result["probes"][0]["name"] == "dead" and result["elapsed_s"] == 0


@pytest.mark.integration
def test_check_waits_for_consecutive_healthy_rounds(web):
    clock = FakeClock()
    specs = normalize([http(web.url("/ok"))])
    result = check(
        specs, wait_for=HEALTHY, min_consecutive=3, interval=0.5, deadline=10, sleep=clock.sleep, clock=clock
    )
    assert result["status"] == HEALTHY
    assert (result["rounds"], result["consecutive_healthy"], result["deadline_reached"]) == (3, 3, False)
    assert clock.sleeps == [0.5, 0.5]
    assert result["elapsed_s"] == 1.0


@pytest.mark.integration
def test_check_streak_restarts_after_a_bad_round(fresh_web):
    fresh_web.scripts["wobbly"] = [200, 500, 200, 200, 200, 500]
    clock = FakeClock()
    specs = normalize([http(fresh_web.url("/script/wobbly"))])
    result = check(specs, wait_for=HEALTHY, min_consecutive=3, interval=1, deadline=60, sleep=clock.sleep, clock=clock)
    assert result["status"] == HEALTHY
    assert (result["rounds"], result["consecutive_healthy"]) == (5, 3)
    assert fresh_web.hits["/script/wobbly"] == 5


def test_check_stops_at_the_deadline():
    clock = FakeClock()
    specs = normalize([{"kind": "tcp", "host": "127.0.0.1", "port": free_port()}])
    result = check(specs, wait_for=HEALTHY, deadline=5, interval=1, sleep=clock.sleep, clock=clock)
    assert result["status"] == DOWN and result["deadline_reached"] is True
    assert result["rounds"] == 6 and clock.sleeps == [1] * 5  # rounds at 0, 1, ... 5 s: none starts past 5 s
    assert result["elapsed_s"] <= 5


@pytest.mark.integration
def test_check_deadline_with_some_healthy_rounds(fresh_web):
    fresh_web.scripts["late"] = [200, 200, 500]
    clock = FakeClock()
    specs = normalize([http(fresh_web.url("/script/late"))])
    result = check(specs, wait_for=HEALTHY, min_consecutive=3, deadline=3, interval=1, sleep=clock.sleep, clock=clock)
    assert result["deadline_reached"] is True and result["status"] == DOWN
    assert result["rounds"] == 4 and result["consecutive_healthy"] == 0


@pytest.mark.integration
def test_check_degraded_rounds_do_not_count_as_healthy(web):
    clock = FakeClock()
    specs = normalize(
        [http(web.url("/ok")), {"kind": "tcp", "host": "127.0.0.1", "port": free_port(), "critical": False}]
    )
    result = check(specs, wait_for=HEALTHY, deadline=2, interval=1, sleep=clock.sleep, clock=clock)
    assert result["status"] == DEGRADED and result["deadline_reached"] is True and result["rounds"] == 3


def test_check_zero_deadline_probes_once():
    clock = FakeClock()
    specs = normalize([{"kind": "tcp", "host": "127.0.0.1", "port": free_port()}])
    result = check(specs, wait_for=HEALTHY, deadline=0, interval=1, sleep=clock.sleep, clock=clock)
    assert result["rounds"] == 1 and result["deadline_reached"] is True and clock.sleeps == []


@pytest.mark.integration
def test_check_really_waits_for_a_server_that_comes_up(fresh_web):
    fresh_web.ready_at = time.monotonic() + 0.6
    specs = normalize([http(fresh_web.url("/ready"), name="ready")])
    started = time.monotonic()
    result = check(specs, wait_for=HEALTHY, deadline=10, interval=0.1, min_consecutive=2)
    assert result["status"] == HEALTHY, result
    assert result["deadline_reached"] is False and result["consecutive_healthy"] == 2
    assert result["rounds"] >= 4  # several 503 rounds, then two healthy ones
    assert 0.5 <= time.monotonic() - started < 5
    assert result["elapsed_s"] >= 0.5


def test_check_passes_the_runner_through():
    specs = normalize([{"kind": "command", "argv": ["true"]}])
    assert check(specs, run_command=run_process)["status"] == HEALTHY
