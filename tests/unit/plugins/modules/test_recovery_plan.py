"""The recovery_plan module through the unit-test harness, on real SQLite stores.

Probes need no server: a TCP port where nothing listens refuses (the app crashed), a socket the test
listens on answers (healthy).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from ansible_collections.mttr.recovery.plugins.modules import recovery_plan
from ansible_collections.mttr.recovery.tests.support.listeners import SilentListener
from ansible_collections.mttr.recovery.tests.support.processes import free_port
from ansible_collections.mttr.recovery.tests.unit.plugins.modules import utils
from ansible_collections.mttr.recovery.tests.unit.plugins.modules.utils import AnsibleFailJson

run_module = functools.partial(utils.run_module, recovery_plan)

TABLES = ("incidents", "timeline", "locks")

# The lab's catalog (inventories/lab/service_catalog.yml).
CATALOG = {
    "orders-db": {
        "tier": 0,
        "hosts": {"primary": ["pg1"], "standby": ["pg2"]},
        "strategies": {"primary-down": "failover", "data-loss": "restore"},
    },
    "objstore": {"tier": 1, "hosts": {"s3": ["s3"]}},
    "orders": {
        "tier": 1,
        "depends_on": ["orders-db", "objstore"],
        "hosts": {"app": ["app1"], "lb": ["lb1"]},
        "strategies": {"bad-release": "rollback", "app-crash": "restart"},
    },
}


@pytest.fixture
def listener():
    # one per test: the connections it never accepts fill its backlog
    sock = SilentListener()
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def dead_port():
    return free_port()


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "mttr" / "incidents.sqlite")


def tcp(name, port):
    return {"name": name, "kind": "tcp", "host": "127.0.0.1", "port": port, "timeout": 1}


def hosts(listener, app_port):
    """The lab's hosts, each with one TCP probe (no label: the module labels it with its host and service)."""
    return {
        "app1": {"services": ["orders"], "probes": [tcp("app1 port", app_port)]},
        "lb1": {"services": ["orders"], "probes": [tcp("lb1 web frontend", listener.port)]},
        "s3": {"services": ["objstore"], "probes": [tcp("s3 endpoint", listener.port)]},
        "pg1": {"services": ["orders-db"], "probes": [tcp("pg1 port", listener.port)]},
        "pg2": {"services": ["orders-db"], "probes": [tcp("pg2 port", listener.port)]},
    }


def crashed(listener, dead_port):
    return hosts(listener, dead_port)


def healthy(listener):
    return hosts(listener, listener.port)


def plan(store, hosts_, **extra):
    return run_module(dict({"store": store, "service": "orders", "catalog": CATALOG, "hosts": hosts_}, **extra))


def record(store, incident_id, step, result, **extra):
    args = {"action": "record", "store": store, "incident_id": incident_id, "step": step, "result": result}
    return run_module(dict(args, **extra))


def counts(path):
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}
    finally:
        conn.close()


def timeline(store, incident_id):
    with IncidentStore(store) as opened:
        return opened.timeline(incident_id)


def kinds(store, incident_id, kind):
    return [entry for entry in timeline(store, incident_id) if entry["kind"] == kind]


def test_plan_opens_locks_records_and_acknowledges(store, listener, dead_port):
    result = plan(store, crashed(listener, dead_port))
    incident = result["incident"]
    assert result["changed"] is True and result["resumed"] is False and result["store"] == store
    assert incident["id"].startswith("INC-") and incident["status"] == "acknowledged"
    assert incident["services"] == ["orders"]
    assert result["msg"] == "triage: orders is app-crash -> restart"
    assert [(step["id"], step["hosts"], step["status"], step["run"]) for step in result["plan"]["steps"]] == [
        ("orders:restart", ["app1"], "pending", True)
    ]
    assert result["plan"]["services"] == ["orders-db", "objstore", "orders"]
    # every host's probe ran, labelled with its host and service
    assert len(result["probes"]) == 5
    app1 = next(probe for probe in result["probes"] if probe["name"] == "app1 port")
    assert app1["status"] == "down" and app1["error"] == "Connection refused"
    assert app1["labels"] == {"host": "app1", "service": "orders"}
    # the store holds it: the lock, the status entries, the plan the module returned
    with IncidentStore(store) as check:
        assert [(lock["service"], lock["incident_id"]) for lock in check.locks()] == [("orders", incident["id"])]
        entries = check.timeline(incident["id"])
    assert [entry["action"] for entry in entries if entry["kind"] == "status"] == ["open", "acknowledged"]
    plans = [entry for entry in entries if entry["kind"] == "plan"]
    assert len(plans) == 1 and plans[0]["action"] == "triage"
    assert plans[0]["message"] == "triage: orders is app-crash -> restart"
    assert json.loads(plans[0]["result"])["steps"][0]["id"] == "orders:restart"


def test_a_second_plan_for_the_incident_resumes_without_probing(store, listener, dead_port):
    first = plan(store, crashed(listener, dead_port))
    incident_id = first["incident"]["id"]
    before = counts(store)
    # the app is back by now: a resumed plan does not look, it keeps the recorded one
    again = plan(store, healthy(listener), incident_id=incident_id)
    assert again["resumed"] is True and again["probes"] == []
    assert again["plan"]["steps"] == first["plan"]["steps"]
    assert again["incident"]["status"] == "acknowledged"
    assert counts(store) == before
    assert len(kinds(store, incident_id, "plan")) == 1


def test_a_resumed_plan_reports_no_change(store, listener, dead_port):
    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    assert plan(store, crashed(listener, dead_port), incident_id=incident_id)["changed"] is False


def test_a_recorded_step_is_completed_in_the_resumed_plan(store, listener, dead_port):
    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    started = record(store, incident_id, "orders:restart", "started", undo_point={"reversible": False})
    assert started["changed"] is True and started["msg"] == "orders:restart: started"
    done = record(store, incident_id, "orders:restart", "completed", note="restarted app1")
    assert done["msg"] == "orders:restart: completed (restarted app1)"
    undo = kinds(store, incident_id, "undo")
    assert [(entry["action"], json.loads(entry["result"])) for entry in undo] == [
        ("orders:restart", {"reversible": False})
    ]
    assert undo[0]["message"] == "undo point of orders:restart: reversible=False"

    resumed = plan(store, crashed(listener, dead_port), incident_id=incident_id)
    step = resumed["plan"]["steps"][0]
    assert (step["status"], step["run"], step["undo_point"]) == ("completed", False, {"reversible": False})
    assert resumed["msg"] == ("triage: orders is app-crash -> restart (resumed; completed already: orders:restart)")


def test_from_start_plans_afresh_and_forgets_the_progress(store, listener, dead_port):
    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    record(store, incident_id, "orders:restart", "completed")
    fresh = plan(store, crashed(listener, dead_port), incident_id=incident_id, from_start=True)
    assert fresh["changed"] is True and fresh["resumed"] is False and len(fresh["probes"]) == 5
    assert [(step["status"], step["run"]) for step in fresh["plan"]["steps"]] == [("pending", True)]
    assert len(kinds(store, incident_id, "plan")) == 2


def test_check_mode_writes_nothing(store, listener, dead_port):
    predicted = plan(store, crashed(listener, dead_port), _ansible_check_mode=True)
    assert predicted["changed"] is True and predicted["incident"]["status"] == "acknowledged"
    assert predicted["plan"]["steps"][0]["id"] == "orders:restart"
    assert not os.path.exists(store) and not os.path.exists(os.path.dirname(store))

    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    before = counts(store)
    assert plan(
        store, crashed(listener, dead_port), incident_id=incident_id, from_start=True, _ansible_check_mode=True
    )["changed"]
    assert record(store, incident_id, "orders:restart", "completed", _ansible_check_mode=True)["changed"] is True
    assert counts(store) == before


def test_an_incident_of_another_service_is_refused(store, listener, dead_port):
    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    before = counts(store)
    failed = run_module(
        {"store": store, "service": "objstore", "catalog": CATALOG, "hosts": {}, "incident_id": incident_id},
        AnsibleFailJson,
    )
    assert failed["msg"] == (
        f"incident {incident_id} is about orders, not objstore: open a new one for it (leave the incident out)"
    )
    assert "\n" not in failed["msg"] and failed["changed"] is False
    assert counts(store) == before


def test_a_second_incident_for_a_locked_service_is_refused(store, listener, dead_port):
    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    before = counts(store)
    failed = plan_failure(store, crashed(listener, dead_port))
    assert failed["holder"] == incident_id and "orders" in failed["msg"] and "\n" not in failed["msg"]
    assert counts(store) == before


def plan_failure(store, hosts_, **extra):
    args = dict({"store": store, "service": "orders", "catalog": CATALOG, "hosts": hosts_}, **extra)
    return run_module(args, AnsibleFailJson)


def test_errors_are_one_line(store, listener, dead_port):
    assert plan_failure(store, {}, service="billing")["msg"].startswith("unknown service billing: the catalog has")
    unplanned = plan_failure(store, crashed(listener, dead_port), failure_mode="instance-lost")["msg"]
    assert "no strategy for instance-lost (it has: bad-release: rollback, app-crash: restart)" in unplanned
    unknown = run_module(
        {"action": "record", "store": store, "incident_id": "INC-NONE", "step": "a:b", "result": "started"},
        AnsibleFailJson,
    )
    assert unknown["msg"].startswith("no incident INC-NONE in ")
    assert not any("\n" in message for message in (unplanned, unknown["msg"]))
    assert "incident_id" in run_module({"action": "validate", "store": store}, AnsibleFailJson)["msg"]


def test_validate_records_a_passed_validate_step(store, listener, dead_port):
    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    record(store, incident_id, "orders:restart", "completed")
    found = run_module(
        {"action": "validate", "store": store, "incident_id": incident_id, "hosts": healthy(listener), "interval": 0.05}
    )
    assert found["changed"] is True and found["passed"] is True and found["failures"] == []
    assert found["rounds"] == 2 and len(found["probes"]) == 5
    assert found["msg"] == "validated: orders-db, objstore, orders healthy"
    steps = kinds(store, incident_id, "step")
    assert (steps[-1]["action"], steps[-1]["result"], steps[-1]["message"]) == ("validate", "completed", found["msg"])


def test_validate_records_a_failed_validate_step(store, listener, dead_port):
    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    record(store, incident_id, "orders:restart", "failed")
    found = run_module(
        {
            "action": "validate",
            "store": store,
            "incident_id": incident_id,
            "hosts": crashed(listener, dead_port),
            "deadline": 0.3,
            "interval": 0.05,
        }
    )
    assert found["passed"] is False
    assert found["failures"][0] == "step orders:restart failed"
    assert found["failures"][1].startswith("orders: app1 port: down (Connection refused)")
    last = kinds(store, incident_id, "step")[-1]
    assert (last["action"], last["result"]) == ("validate", "failed")
    assert last["message"].startswith("validation failed: step orders:restart failed; orders: app1 port")


def test_validate_counts_extra_probes_for_the_service(store, listener, dead_port):
    incident_id = plan(store, crashed(listener, dead_port))["incident"]["id"]
    found = run_module(
        {
            "action": "validate",
            "store": store,
            "incident_id": incident_id,
            "hosts": healthy(listener),
            "probes": [tcp("orders checkout", dead_port)],
            "deadline": 0.3,
            "interval": 0.05,
        }
    )
    assert found["passed"] is False
    assert found["failures"] == ["orders: orders checkout: down (Connection refused)"]


def test_validate_without_a_plan_is_refused(store):
    with IncidentStore(store) as opened:
        incident_id = opened.open(["orders"])[0]["id"]
    failed = run_module({"action": "validate", "store": store, "incident_id": incident_id}, AnsibleFailJson)
    assert failed["msg"] == f"incident {incident_id} has no recovery plan to validate: run the triage first"


def test_command_probes_run(store, listener):
    """A command probe (health_check's format, as the validate probes are documented to take) runs."""
    ok = {"name": "checkout works", "kind": "command", "argv": ["true"]}
    result = plan(store, dict(healthy(listener), lb1={"services": ["orders"], "probes": [ok]}))
    probe = next(probe for probe in result["probes"] if probe["name"] == "checkout works")
    assert probe["status"] == "healthy", probe["error"]
    assert result["plan"]["steps"] == []
