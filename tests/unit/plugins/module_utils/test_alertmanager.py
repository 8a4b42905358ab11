"""The alert parsing engine: Alertmanager v4 payloads as Alertmanager writes them, generic alerts, the service
from a label or from the instance through the catalog, the firing/resolved state, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.alertmanager import (
    NEW,
    REPEAT,
    RESOLVE,
    UNSEEN,
    AlertState,
    Parser,
    PayloadError,
    expand_host_pattern,
    instance_host,
    load_catalog,
    parse_payload,
    parse_time,
)
from ansible_collections.mttr.recovery.plugins.module_utils.catalog import CatalogError

FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager"
REPO = Path(__file__).resolve().parents[4]

CATALOG = {
    "orders-db": {"tier": 0, "hosts": {"primary": ["pg1"], "standby": ["pg2"]}},
    "orders": {"tier": 1, "depends_on": ["orders-db"], "hosts": {"app": ["app1", "app2"], "lb": ["lb1"]}},
    "billing": {"tier": 2, "hosts": {"app": "billing[01:03]", "lb": ["lb1"]}},
}


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T10:15:03Z", "2026-11-27T10:15:03.000000+00:00"),
        ("2026-11-27T10:15:03.5Z", "2026-11-27T10:15:03.500000+00:00"),
        ("2026-11-27T10:15:03.481516237Z", "2026-11-27T10:15:03.481516+00:00"),
        ("2026-11-27T10:15:03.000000001Z", "2026-11-27T10:15:03.000000+00:00"),
        ("2026-11-27T11:15:03.1234+01:00", "2026-11-27T10:15:03.123400+00:00"),
        ("2026-11-27T04:45:03-05:30", "2026-11-27T10:15:03.000000+00:00"),
        ("2026-11-27t10:15:03z", "2026-11-27T10:15:03.000000+00:00"),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
    ],
)
def test_times_as_go_writes_them(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text", ["2026-11-27 10:15", "2026-11-27T10:15:03", "2026-11-27T10:15:03.1234567890Z", "2026-13-01T00:00:00Z", 17]
)
def test_times_that_are_not_rfc3339_are_refused_naming_the_field(text):
    with pytest.raises(PayloadError, match=r"^alerts\[0\]\.startsAt: ") as caught:
        parse_time(text, "alerts[0].startsAt")
    assert "\n" not in str(caught.value)


def test_a_firing_group_gives_one_event_per_alert_with_its_own_labels():
    events = parse_payload(fixture("firing_group.json"), catalog=CATALOG)
    assert len(events) == 2
    app, db = events
    assert app == {
        "kind": "firing",
        "service": "orders",
        "failure_mode": "app-crash",
        "fingerprint": "5e7fa8cd2ab0d9a3",
        "labels": {
            "alertname": "ServiceDown",
            "failure_mode": "app-crash",
            "instance": "app1:8080",
            "job": "orders-app",
            "service": "orders",
            "severity": "critical",
        },
        "annotations": {
            "description": "app1:8080 has answered no probe for 2s.",
            "summary": "orders is down on app1",
        },
        "starts_at": "2026-11-27T10:15:03.481516+00:00",
        "ends_at": None,
        "group_key": '{}:{alertname="ServiceDown"}',
        "source": "alertmanager",
        "alertname": "ServiceDown",
        "instance": "app1:8080",
        "generator_url": app["generator_url"],
        "receiver": "mttr-eda",
        "service_from": "label",
        "catalogued": True,
        "service_candidates": [],
    }
    assert app["generator_url"].startswith("http://prometheus.lab:9090/graph?")
    # commonLabels has neither service nor failure_mode (the alerts differ): each comes from the alert itself
    assert (db["service"], db["failure_mode"], db["starts_at"]) == (
        "orders-db",
        "primary-down",  # from the annotation
        "2026-11-27T10:15:04.500000+00:00",
    )


def test_a_mixed_group_has_resolved_and_firing_alerts_and_endsat_only_when_resolved():
    resolved, firing = parse_payload(fixture("mixed_group.json"))
    assert (resolved["kind"], resolved["ends_at"]) == ("resolved", "2026-11-27T10:16:41.090000+00:00")
    # a firing alert's endsAt is Alertmanager's timeout guess, not an end
    assert (firing["kind"], firing["ends_at"], firing["starts_at"]) == (
        "firing",
        None,
        "2026-11-27T10:15:03.123400+00:00",
    )
    assert firing["catalogued"] is None  # no catalog given


def test_the_service_comes_from_the_instance_through_the_catalog():
    app, standby, unknown = parse_payload(fixture("instance_only.json"), catalog=CATALOG)
    assert (app["service"], app["service_from"], app["catalogued"]) == ("orders", "instance", True)
    assert app["starts_at"] == "2026-11-27T15:45:03.000000+00:00"
    # an FQDN whose first part is a catalog host, with a port
    assert (standby["service"], standby["service_from"]) == ("orders-db", "instance")
    assert (unknown["service"], unknown["service_from"], unknown["catalogued"]) == (None, None, False)
    assert unknown["failure_mode"] is None


def test_an_instance_shared_by_services_names_none_and_lists_them():
    (event,) = parse_payload([{"labels": {"instance": "lb1:8404"}}], catalog=CATALOG)
    assert event["service"] is None
    assert event["service_candidates"] == ["billing", "orders"]


def test_a_label_wins_over_the_instance_and_the_service_label_can_be_another():
    alert = {"labels": {"app": "billing", "service": "ignored", "instance": "app1:8080"}}
    (event,) = Parser(catalog=CATALOG, service_label="app").parse([alert])
    assert (event["service"], event["service_from"]) == ("billing", "label")
    (event,) = Parser(catalog=CATALOG, service_label="team").parse([alert])
    assert (event["service"], event["service_from"]) == ("orders", "instance")


def test_a_labelled_service_the_catalog_does_not_know_is_not_catalogued():
    (event,) = parse_payload([{"labels": {"service": "payments"}}], catalog=CATALOG)
    assert (event["service"], event["catalogued"]) == ("payments", False)


@pytest.mark.parametrize(
    ("instance", "host"),
    [
        ("app1", "app1"),
        ("app1:8080", "app1"),
        ("APP1:8080", "app1"),
        ("http://app1:8080/health?x=1", "app1"),
        ("https://user@app1/", "app1"),
        ("[::1]:9100", "::1"),
        ("::1", "::1"),
        ("", ""),
    ],
)
def test_instance_host(instance, host):
    assert instance_host(instance) == host


def test_host_patterns_expand_as_ansible_writes_them():
    assert expand_host_pattern("billing[01:03]") == ["billing01", "billing02", "billing03"]
    assert expand_host_pattern("node[a:c]") == ["nodea", "nodeb", "nodec"]
    assert expand_host_pattern("app1") == ["app1"]
    (event,) = parse_payload([{"labels": {"instance": "billing02:9100"}}], catalog=CATALOG)
    assert event["service"] == "billing"


def test_a_generic_alert_object_list_or_alerts_wrapper():
    def clock():
        return "2026-11-27T10:00:00.000000+00:00"

    parser = Parser(catalog=CATALOG, clock=clock)
    (one,) = parser.parse({"service": "orders", "failure_mode": "bad-release", "labels": {"alertname": "Slow"}})
    assert (one["kind"], one["service"], one["service_from"], one["failure_mode"]) == (
        "firing",
        "orders",
        "field",
        "bad-release",
    )
    assert (one["source"], one["starts_at"], one["group_key"]) == ("generic", "2026-11-27T10:00:00.000000+00:00", None)
    assert len(one["fingerprint"]) == 16
    # the same alert twice has the same fingerprint; another service another one
    (again,) = parser.parse(
        [{"service": "orders", "labels": {"alertname": "Slow"}, "starts_at": "2026-11-27T10:00:00Z"}]
    )
    assert again["fingerprint"] == one["fingerprint"]
    assert again["starts_at"] == "2026-11-27T10:00:00.000000+00:00"
    (other,) = parser.parse({"alerts": [{"service": "orders-db", "labels": {"alertname": "Slow"}}]})
    assert other["fingerprint"] != one["fingerprint"]
    (resolved,) = parser.parse({"status": "resolved", "instance": "pg1", "ends_at": "2026-11-27T10:05:00Z"})
    assert (resolved["kind"], resolved["service"], resolved["ends_at"]) == (
        "resolved",
        "orders-db",
        "2026-11-27T10:05:00.000000+00:00",
    )


def test_the_body_parser_reads_bytes():
    body = (FIXTURES / "firing_group.json").read_bytes()
    assert [e["service"] for e in Parser().parse_body(body)] == ["orders", "orders-db"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", r"^the body is empty"),
        (b"   ", r"^the body is empty"),
        (b"\xff\xfe{}", r"^the body is not UTF-8"),
        (b"{not json", r"^the body is not JSON: "),
        (b'"firing"', r"^expected a JSON object or list of alerts, got a string$"),
        (b"42", r"^expected a JSON object or list of alerts, got a number$"),
        (b'{"version": "3", "alerts": []}', r"^version: Alertmanager webhook version '3' is not read"),
        (b'{"version": "4", "alerts": {}}', r"^alerts: expected a list, got an object$"),
        (b'{"version": "4", "alerts": [7]}', r"^alerts\[0\]: expected an alert object, got a number$"),
        (b'{"version": "4", "alerts": [{"startsAt": "2026-11-27T10:15:03Z"}]}', r"^alerts\[0\]\.labels: missing"),
        (b'{"version": "4", "alerts": [{"labels": {}}]}', r"^alerts\[0\]\.startsAt: missing"),
        (
            b'{"version": "4", "alerts": [{"status": "bogus", "labels": {}, "startsAt": "2026-11-27T10:15:03Z"}]}',
            r"^alerts\[0\]\.status: expected 'firing' or 'resolved', got 'bogus'$",
        ),
        (
            b'{"version": "4", "alerts": [{"status": "firing", "labels": {}, "startsAt": "0001-01-01T00:00:00Z"}]}',
            r"^alerts\[0\]\.startsAt: an alert must say when it started$",
        ),
        (
            b'{"version": "4", "alerts": [{"status": "firing", "labels": {"a": {"b": 1}}, "startsAt": "x"}]}',
            r"^alerts\[0\]\.labels\.a: expected text, got an object$",
        ),
        (b'[{"labels": []}]', r"^\[0\]\.labels: expected an object of names to text, got a list$"),
        (b'{"alerts": "x"}', r"^alerts: expected a list, got a string$"),
    ],
)
def test_malformed_payloads_raise_one_line_errors(body, message):
    with pytest.raises(PayloadError, match=message) as caught:
        Parser().parse_body(body)
    assert "\n" not in str(caught.value)


def test_state_firing_then_repeat_then_resolve_then_unseen():
    now = [1000.0]
    state = AlertState(max_entries=10, ttl=60, clock=lambda: now[0])
    firing, resolved = parse_payload(fixture("firing_group.json"))[0], parse_payload(fixture("mixed_group.json"))[0]
    assert firing["fingerprint"] == resolved["fingerprint"]
    assert state.observe(firing) == NEW
    assert state.observe(firing) == REPEAT
    assert firing["fingerprint"] in state and len(state) == 1
    assert state.observe(resolved) == RESOLVE
    assert state.observe(resolved) == UNSEEN  # a resolve is told once
    assert len(state) == 0


def test_state_forgets_after_ttl_since_last_seen_firing():
    now = [0.0]
    state = AlertState(ttl=60, clock=lambda: now[0])
    firing, resolved = parse_payload(fixture("firing_group.json"))[0], parse_payload(fixture("mixed_group.json"))[0]
    state.observe(firing)
    now[0] = 50
    assert state.observe(firing) == REPEAT  # seen again: kept another 60 s
    now[0] = 100
    assert firing["fingerprint"] in state
    now[0] = 111
    assert firing["fingerprint"] not in state
    assert state.observe(resolved) == UNSEEN


def test_state_is_bounded_the_least_recently_seen_go_first():
    state = AlertState(max_entries=3, ttl=3600)
    events = [{"kind": "firing", "fingerprint": f"f{n}"} for n in range(4)]
    for event in events[:3]:
        state.observe(event)
    state.observe(events[0])  # seen again: now the most recent
    state.observe(events[3])
    assert len(state) == 3
    assert "f1" not in state and {"f0", "f2", "f3"} <= {f for f in ("f0", "f2", "f3") if f in state}
    assert state.observe({"kind": "resolved", "fingerprint": "f1"}) == UNSEEN
    with pytest.raises(ValueError):
        AlertState(max_entries=0)


def test_load_catalog_from_a_file_or_an_inventory_directory(tmp_path):
    lab = load_catalog(REPO / "inventories" / "lab")
    assert {"orders", "orders-db", "objstore"} <= set(lab)
    assert lab["orders"]["hosts"]["app"] == ["app1"]
    (event,) = parse_payload([{"labels": {"instance": "app1:8080"}}], catalog=lab)
    assert event["service"] == "orders"
    assert load_catalog(REPO / "inventories" / "lab" / "service_catalog.yml") == lab

    with pytest.raises(CatalogError, match=r"no \*catalog\.yml in"):
        load_catalog(tmp_path)
    with pytest.raises(CatalogError, match="no such file"):
        load_catalog(tmp_path / "missing.yml")
    cyclic = tmp_path / "service_catalog.yml"
    cyclic.write_text("services:\n  a: {depends_on: [b]}\n  b: {depends_on: [a]}\n")
    with pytest.raises(CatalogError, match="dependency cycle"):
        load_catalog(tmp_path)
    cyclic.write_text("services: [a, b]\n")
    with pytest.raises(CatalogError, match="expected a mapping with 'services'"):
        load_catalog(cyclic)
    cyclic.write_text("services: {a: {tier: 9}}\n")
    with pytest.raises(CatalogError, match="tier must be one of"):
        load_catalog(cyclic)
