"""The recovery engine: triage's rules, the plan's order and hosts, the verdict, and the timeline helpers.

Probe results are built in the shape ``probes.run_probe`` returns; the catalog is the lab's
(inventories/lab/service_catalog.yml). No server is involved.
"""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from ansible_collections.mttr.recovery.plugins.module_utils.recovery import (
    STRATEGY_ROLES,
    RecoveryError,
    assess,
    check_step_result,
    classify,
    plan_line,
    plan_record,
    progress,
    recorded_plan,
    since_last_plan,
    step_hosts,
    undo_points,
    verdict,
    with_progress,
)

CATALOG = {
    "orders-db": {
        "tier": 0,
        "owner": "team-orders",
        "hosts": {"primary": ["pg1"], "standby": ["pg2"]},
        "strategies": {"primary-down": "failover", "data-loss": "restore"},
    },
    "objstore": {"tier": 1, "owner": "team-platform", "hosts": {"s3": ["s3"]}},
    "orders": {
        "tier": 1,
        "owner": "team-orders",
        "depends_on": ["orders-db", "objstore"],
        "hosts": {"app": ["app1"], "lb": ["lb1"]},
        "strategies": {"bad-release": "rollback", "app-crash": "restart"},
    },
}
MEMBERS = {"orders-db": ["pg1", "pg2"], "objstore": ["s3"], "orders": ["app1", "lb1"]}
ORDER = ["orders-db", "objstore", "orders"]

REFUSED = "Connection refused"
TIMED_OUT = "timed out after 2 s"


def result(name, kind, service, host, component, error=None, details=None, status=None):
    """One probe result as run_probe returns it (down when it has an error)."""
    return {
        "name": name,
        "kind": kind,
        "index": 0,
        "status": status or ("down" if error else "healthy"),
        "latency_ms": 1.0,
        "attempts": 1,
        "error": error,
        "critical": True,
        "labels": {"service": service, "host": host, "component": component},
        "details": details or {},
    }


def pg(host, role="primary", error=None):
    details = {} if error else {"role": role, "in_recovery": role == "standby"}
    return result(f"{host} postgres", "postgres", "orders-db", host, "db", error, details)


def app(how="ok"):
    """app1's two probes (through the load balancer and direct): ok, crashed, bad release, or machine gone."""
    if how == "ok":
        return [
            result("app1 health via lb", "http", "orders", "app1", "app", details={"status_code": 200}),
            result("app1 health direct", "http", "orders", "app1", "app", details={"status_code": 200}),
        ]
    if how == "crashed":  # HAProxy answers 503 for a backend with no server up; the app port refuses
        return [
            result(
                "app1 health via lb", "http", "orders", "app1", "app", "HTTP 503, expected 200", {"status_code": 503}
            ),
            result("app1 health direct", "http", "orders", "app1", "app", REFUSED),
        ]
    if how == "unhealthy":  # the app answers, its /health fails
        return [
            result(
                "app1 health via lb", "http", "orders", "app1", "app", "HTTP 500, expected 200", {"status_code": 500}
            ),
            result(
                "app1 health direct", "http", "orders", "app1", "app", "HTTP 500, expected 200", {"status_code": 500}
            ),
        ]
    assert how == "gone"
    return [
        result("app1 health via lb", "http", "orders", "app1", "app", TIMED_OUT),
        result("app1 health direct", "http", "orders", "app1", "app", "No route to host"),
    ]


def lb():
    return [
        result("lb1 write endpoint", "tcp", "orders", "lb1", "lb"),
        result("lb1 web frontend", "tcp", "orders", "lb1", "lb"),
    ]


def s3(error=None):
    return [result("s3 s3 endpoint", "http", "objstore", "s3", "objstore", error, {"status_code": 403})]


def lab(pg1=None, pg2=None, app_how="ok", s3_error=None):
    """The lab's probe results: pg1 primary, pg2 standby, unless told otherwise."""
    return [
        pg1 or pg("pg1"),
        pg2 or pg("pg2", "standby"),
        *s3(s3_error),
        *app(app_how),
        *lb(),
    ]


def integrity(host, ok=True):
    error = None if ok else "expected ge 1, got 0"
    return result(f"{host} orders table has rows", "postgres", "orders-db", host, "db", error)


def plan_of(results, integrity_checks=(), service="orders", catalog=None, **given):
    return assess(catalog or CATALOG, service, MEMBERS, results, list(integrity_checks), **given)


def steps_of(plan):
    return [(step["id"], step["hosts"]) for step in plan["steps"]]


# ---------------------------------------------------------------------- triage: one rule per failure mode


def test_a_healthy_estate_needs_no_step():
    plan = plan_of(lab())
    assert plan["services"] == ORDER
    assert plan["dependencies"] == {"orders-db": [], "objstore": [], "orders": ["orders-db", "objstore"]}
    assert plan["steps"] == [] and plan["affected"] == [] and plan["states"] == {} and plan["notes"] == []
    assert plan["failure_mode"] is None
    assert plan_line(plan) == "triage: orders and its dependencies need no recovery step"


def test_primary_down_when_no_node_answers_as_primary():
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="unhealthy"))
    state = plan["states"]["orders-db"]
    assert state["failure_mode"] == "primary-down" and not state["dependent"]
    assert state["evidence"][0] == "no node answers as the primary"
    assert "pg1 postgres: down (Connection refused)" in state["evidence"]
    # the failover runs on every database node: the standby to promote and the old primary to fence
    assert steps_of(plan) == [("orders-db:failover", ["pg1", "pg2"])]
    step = plan["steps"][0]
    assert (step["role"], step["failure_mode"], step["undo"]) == ("failover", "primary-down", None)
    assert plan["failure_mode"] == "primary-down" and plan["affected"] == ["orders-db"]
    assert plan_line(plan) == "triage: orders-db is primary-down -> failover"


def test_primary_down_when_the_only_answer_is_a_standby():
    # pg1 answers, but as a standby (a demoted primary): still nobody takes writes
    plan = plan_of(lab(pg1=pg("pg1", "standby")))
    assert plan["states"]["orders-db"]["failure_mode"] == "primary-down"


def test_a_down_standby_while_the_primary_answers_is_a_note_not_a_failure():
    plan = plan_of(lab(pg2=pg("pg2", error=REFUSED)))
    assert plan["steps"] == [] and plan["states"] == {}
    assert len(plan["notes"]) == 1
    assert plan["notes"][0].startswith("pg2 is down (Connection refused): redundancy is reduced")


def test_classify_a_down_standby_returns_a_healthy_state_with_the_note():
    state = classify("orders-db", ["pg1", "pg2"], lab(pg2=pg("pg2", error=REFUSED)), [], [])
    assert state["healthy"] is True and state["failure_mode"] is None and "pg2 is down" in state["notes"][0]
    assert classify("orders-db", ["pg1", "pg2"], lab(), [], []) is None


def test_data_loss_from_an_integrity_check_on_a_healthy_host():
    plan = plan_of(lab(app_how="unhealthy"), [integrity("pg1", ok=False), integrity("pg2")])
    state = plan["states"]["orders-db"]
    assert state["failure_mode"] == "data-loss"
    assert state["evidence"] == ["pg1 orders table has rows: down (expected ge 1, got 0)"]
    # the restore goes to the live primary only
    assert steps_of(plan) == [("orders-db:restore", ["pg1"])]
    assert plan["steps"][0]["role"] == "backup_restore" and plan["steps"][0]["undo"]
    # the app answering unhealthy while its database fails is dependent on it: no step of its own
    assert plan["states"]["orders"]["dependent"] is True and plan["states"]["orders"]["failure_mode"] is None
    assert plan["affected"] == ["orders-db"]


def test_an_integrity_check_on_a_down_host_says_nothing_about_the_data():
    # the standby is down and its check cannot run: reduced redundancy, not data loss
    plan = plan_of(lab(pg2=pg("pg2", error=REFUSED)), [integrity("pg1"), integrity("pg2", ok=False)])
    assert plan["steps"] == [] and "orders-db" not in plan["states"]
    # the primary is down and its check cannot run: the primary is down, the data is not known lost
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED)), [integrity("pg1", ok=False), integrity("pg2")])
    assert plan["states"]["orders-db"]["failure_mode"] == "primary-down"


def test_instance_lost_when_every_probe_of_a_host_finds_no_answer():
    state = classify("orders", MEMBERS["orders"], lab(app_how="gone"), [], [])
    assert state["failure_mode"] == "instance-lost"
    assert state["evidence"][0] == "app1 does not answer at all"


def test_one_timeout_among_refused_probes_is_a_crash_not_a_lost_instance():
    results = lab()
    results[3] = result("app1 health via lb", "http", "orders", "app1", "app", TIMED_OUT)
    results[4] = result("app1 health direct", "http", "orders", "app1", "app", REFUSED)
    assert classify("orders", MEMBERS["orders"], results, [], [])["failure_mode"] == "app-crash"


def test_instance_lost_takes_the_catalogs_strategy_on_the_lost_host():
    catalog = copy.deepcopy(CATALOG)
    catalog["orders"]["strategies"]["instance-lost"] = "replace"
    plan = plan_of(lab(app_how="gone"), catalog=catalog)
    assert steps_of(plan) == [("orders:replace", ["app1"])]
    assert plan["steps"][0]["role"] == "replace"


def test_app_crash_on_a_refused_connection():
    plan = plan_of(lab(app_how="crashed"))
    assert plan["states"]["orders"]["failure_mode"] == "app-crash"
    assert plan["states"]["orders"]["evidence"] == ["app1 health direct: down (Connection refused)"]
    assert steps_of(plan) == [("orders:restart", ["app1"])]
    assert plan["steps"][0]["role"] == "restart" and plan["steps"][0]["undo"] is None


def test_bad_release_when_it_answers_unhealthy_and_its_dependencies_are_healthy():
    plan = plan_of(lab(app_how="unhealthy"))
    assert plan["states"]["orders"]["failure_mode"] == "bad-release"
    assert steps_of(plan) == [("orders:rollback", ["app1"])]
    step = plan["steps"][0]
    assert step["role"] == "snapshot_rollback" and step["undo"].startswith("switch back")
    assert plan_line(plan) == "triage: orders is bad-release -> rollback"


def test_dependent_when_a_dependency_fails():
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="unhealthy"))
    state = plan["states"]["orders"]
    assert state["failure_mode"] is None and state["dependent"] is True
    assert state["evidence"][0] == "fails while it depends on failing orders-db"
    assert [step["service"] for step in plan["steps"]] == ["orders-db"]


def test_a_crash_is_its_own_failure_even_while_a_dependency_fails():
    catalog = copy.deepcopy(CATALOG)
    catalog["objstore"]["strategies"] = {"app-crash": "restart"}
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), s3_error=REFUSED, app_how="crashed"), catalog=catalog)
    # every dependency before its dependants, the lower tier first among the free ones
    assert [step["id"] for step in plan["steps"]] == ["orders-db:failover", "objstore:restart", "orders:restart"]
    assert plan["affected"] == ORDER
    assert plan_line(plan) == (
        "triage: orders-db is primary-down -> failover; then objstore is app-crash -> restart; "
        "then orders is app-crash -> restart"
    )


def test_a_dependency_of_a_higher_tier_still_goes_first():
    catalog = copy.deepcopy(CATALOG)
    catalog["objstore"].update(tier=3, strategies={"app-crash": "restart"})
    catalog["orders"]["tier"] = 0
    plan = plan_of(lab(s3_error=REFUSED, app_how="crashed"), catalog=catalog)
    assert plan["services"] == ["orders-db", "objstore", "orders"]
    assert [step["id"] for step in plan["steps"]] == ["objstore:restart", "orders:restart"]


def test_a_failure_the_probes_cannot_tell_must_be_given():
    results = lab()
    results[3] = result("app1 health via lb", "http", "orders", "app1", "app", "certificate verify failed")
    with pytest.raises(RecoveryError, match=r"cannot tell how orders failed .*give the failure mode"):
        plan_of(results)
    plan = plan_of(results, failure_mode="bad-release")
    assert steps_of(plan) == [("orders:rollback", ["app1"])]
    assert plan["states"]["orders"]["evidence"][0] == "failure mode bad-release given"


# ---------------------------------------------------------------------- given failure mode and strategy


def test_a_given_failure_mode_wins_over_the_probes():
    plan = plan_of(lab(app_how="crashed"), failure_mode="bad-release")
    assert plan["failure_mode"] == "bad-release"
    assert steps_of(plan) == [("orders:rollback", ["app1"])]
    assert plan["states"]["orders"]["evidence"][:2] == [
        "failure mode bad-release given",
        "app1 health direct: down (Connection refused)",
    ]


def test_a_given_failure_mode_without_a_failing_host_is_refused_naming_what_to_do():
    # 'mttr recover --failure-mode bad-release' for a fault the health checks do not see: a step planned on no
    # host would never run, and the recovery would then validate (the probes pass) and resolve as if it had
    # rolled back. Guessing the hosts (the lb is one of orders' hosts too) is no better: it is refused.
    refused = r"orders: rollback for bad-release has no host to run on.*hosts: \[\.\.\.\]"
    with pytest.raises(RecoveryError, match=refused):
        plan_of(lab(), failure_mode="bad-release")
    catalog = copy.deepcopy(CATALOG)
    catalog["orders"]["strategies"]["bad-release"] = {"strategy": "rollback", "hosts": ["app1"]}
    plan = plan_of(lab(), catalog=catalog, failure_mode="bad-release")
    assert [(step["id"], step["hosts"]) for step in plan["steps"]] == [("orders:rollback", ["app1"])]


def test_a_given_strategy_wins_over_the_catalogs():
    plan = plan_of(lab(app_how="crashed"), strategy="replace")
    assert steps_of(plan) == [("orders:replace", ["app1"])]
    assert plan["steps"][0]["role"] == "replace" and plan["steps"][0]["params"] == {}


def test_a_given_strategy_is_for_the_affected_service_only():
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="crashed"), strategy="replace")
    assert [step["id"] for step in plan["steps"]] == ["orders-db:failover", "orders:replace"]


# ---------------------------------------------------------------------- step hosts


@pytest.mark.parametrize(
    ("strategy", "hosts"),
    [
        ("failover", ["pg1", "pg2"]),  # every database node, also the healthy one
        ("restore", ["pg2"]),  # the node answering as the primary
        ("restart", ["pg1"]),  # the failing ones
        ("rollback", ["pg1"]),
        ("replace", ["pg1"]),
    ],
)
def test_step_hosts(strategy, hosts):
    own = [pg("pg1", error=REFUSED), pg("pg2")]
    assert step_hosts(strategy, ["pg1", "pg2"], own, {}) == hosts


def test_step_hosts_keep_the_members_order():
    own = [*reversed(app("crashed")), *lb()]
    assert step_hosts("restart", ["lb1", "app1"], own, {}) == ["app1"]


def test_the_catalogs_hosts_parameter_wins():
    catalog = copy.deepcopy(CATALOG)
    catalog["orders-db"]["strategies"]["primary-down"] = {"strategy": "failover", "hosts": ["pg2"], "fence": True}
    catalog["orders"]["strategies"]["bad-release"] = {"strategy": "rollback", "to": "1.0.0"}
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED)), catalog=catalog)
    assert steps_of(plan) == [("orders-db:failover", ["pg2"])]
    assert plan["steps"][0]["params"] == {"hosts": ["pg2"], "fence": True}
    plan = plan_of(lab(app_how="unhealthy"), catalog=catalog)
    assert steps_of(plan) == [("orders:rollback", ["app1"])]
    assert plan["steps"][0]["params"] == {"to": "1.0.0"}
    assert step_hosts("restart", ["app1"], app("crashed"), {"hosts": ["app9"]}) == ["app9"]


# ---------------------------------------------------------------------- errors


def test_a_failure_mode_without_a_strategy_names_the_ones_the_service_has():
    with pytest.raises(RecoveryError) as info:
        plan_of(lab(app_how="gone"))
    message = str(info.value)
    assert message.startswith("service orders looks instance-lost (app1 does not answer at all")
    assert (
        "the catalog has no strategy for instance-lost (it has: bad-release: rollback, app-crash: restart)" in message
    )
    assert "--strategy / mttr_strategy" in message
    with pytest.raises(RecoveryError, match=r"objstore looks app-crash .*\(it has: none\)"):
        plan_of(lab(s3_error=REFUSED))
    with pytest.raises(RecoveryError, match="no strategy for data-loss"):
        plan_of(lab(), failure_mode="data-loss")


def test_an_unknown_strategy_is_an_error():
    with pytest.raises(RecoveryError, match=r"service orders: unknown strategy 'reboot' for app-crash; choose one of"):
        plan_of(lab(app_how="crashed"), strategy="reboot")
    catalog = copy.deepcopy(CATALOG)
    catalog["orders"]["strategies"]["app-crash"] = {"strategy": "reboot"}
    with pytest.raises(RecoveryError, match=", ".join(STRATEGY_ROLES)):
        plan_of(lab(app_how="crashed"), catalog=catalog)


def test_a_cycle_in_the_catalog_is_an_error():
    catalog = copy.deepcopy(CATALOG)
    catalog["orders-db"]["depends_on"] = ["orders"]
    with pytest.raises(RecoveryError, match="dependency cycle in the catalog: orders -> orders-db -> orders"):
        plan_of(lab(), catalog=catalog)


def test_an_unknown_service_is_an_error():
    with pytest.raises(RecoveryError, match="unknown service billing: the catalog has objstore, orders, orders-db"):
        plan_of(lab(), service="billing")


def test_a_dependency_missing_from_the_catalog_is_an_error():
    catalog = copy.deepcopy(CATALOG)
    catalog["orders"]["depends_on"] = ["orders-db", "cache"]
    with pytest.raises(RecoveryError, match="service orders depends on cache, which is not in the catalog"):
        plan_of(lab(), catalog=catalog)


# ---------------------------------------------------------------------- verdict


def test_verdict_passes_on_a_healthy_estate():
    plan = plan_of(lab(app_how="unhealthy"))
    assert verdict(plan, MEMBERS, lab(), [integrity("pg1")]) == {"passed": True, "failures": [], "notes": []}


def test_verdict_after_a_failover_notes_the_old_primary():
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="unhealthy"))
    after = lab(pg1=pg("pg1", error=REFUSED), pg2=pg("pg2"))  # pg2 promoted, pg1 fenced
    found = verdict(plan, MEMBERS, after, [integrity("pg1", ok=False), integrity("pg2")])
    assert found["passed"] is True and found["failures"] == []
    assert len(found["notes"]) == 1 and found["notes"][0].startswith("pg1 is down (Connection refused)")


def test_verdict_fails_while_no_node_answers_as_primary():
    # the old primary came back as a standby and the standby was never promoted: both answer, neither takes writes
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="unhealthy"))
    found = verdict(plan, MEMBERS, lab(pg1=pg("pg1", "standby")), [])
    assert found["passed"] is False
    assert found["failures"][0].startswith("orders-db: no node answers as the primary")


def test_verdict_fails_with_one_line_per_failing_service():
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="unhealthy"))
    found = verdict(plan, MEMBERS, lab(pg1=pg("pg1", error=REFUSED), app_how="unhealthy"), [])
    assert found["passed"] is False and found["notes"] == []
    assert found["failures"] == [
        "orders-db: no node answers as the primary; pg1 postgres: down (Connection refused); pg2 postgres: healthy "
        "(unhealthy)",
        "orders: fails while it depends on failing orders-db; app1 health via lb: down (HTTP 500, expected 200); "
        "app1 health direct: down (HTTP 500, expected 200)",
    ]


def test_verdict_reads_a_recorded_plan_and_its_integrity_checks():
    recorded = json.loads(plan_record(plan_of(lab(app_how="crashed"))))
    found = verdict(recorded, MEMBERS, lab(), [integrity("pg1", ok=False)])
    assert found["passed"] is False
    assert found["failures"] == ["orders-db: pg1 orders table has rows: down (expected ge 1, got 0)"]
    assert verdict(recorded, MEMBERS, lab(), [integrity("pg1")])["passed"] is True


# ---------------------------------------------------------------------- the timeline


def entry(kind, action=None, result=None, message=""):
    return {"kind": kind, "action": action, "result": result, "message": message}


def test_recorded_plan_round_trips_the_plan_record():
    plan = plan_of(lab(app_how="crashed"))
    record = plan_record(plan)
    assert set(json.loads(record)) == {
        "service",
        "services",
        "dependencies",
        "affected",
        "failure_mode",
        "severity",
        "steps",
    }
    earlier = plan_record(plan_of(lab(app_how="unhealthy")))
    timeline = [entry("status", "open"), entry("plan", "triage", earlier), entry("plan", "triage", record)]
    assert recorded_plan(timeline) == json.loads(record)
    assert recorded_plan(timeline)["steps"] == plan["steps"]
    assert recorded_plan([entry("status", "open")]) is None
    assert recorded_plan([entry("plan", "triage", "not json")]) is None
    assert recorded_plan([entry("plan", "triage", None)]) is None


def test_since_last_plan_starts_at_the_last_plan_entry():
    timeline = [
        entry("status", "open"),
        entry("plan", "triage", "{}"),
        entry("step", "orders:restart", "completed"),
        entry("plan", "triage", "{}"),
        entry("step", "orders:restart", "started"),
    ]
    assert since_last_plan(timeline) == timeline[3:]
    assert since_last_plan(timeline[:1]) == timeline[:1]


def test_progress_takes_each_steps_last_result():
    timeline = [
        entry("step", "orders-db:failover", "started"),
        entry("step", "orders-db:failover", "completed"),
        entry("step", "orders:restart", "started"),
        entry("undo", "orders:restart", "{}"),
        entry("step", "orders:restart", "failed"),
        entry("step", "orders:restart", "started"),
        entry("note", "orders:restart", "completed"),
        entry("step", None, "completed"),
    ]
    assert progress(timeline) == {"orders-db:failover": "completed", "orders:restart": "started"}


def test_undo_points_parse_each_steps_last_json_result():
    timeline = [
        entry("undo", "orders:rollback", json.dumps({"reversible": True, "releases": {"app1": {"previous": "1.0.0"}}})),
        entry("undo", "orders:rollback", json.dumps({"reversible": True, "releases": {"app1": {"previous": "1.0.1"}}})),
        entry("undo", "orders-db:restore", "not json"),
        entry("step", "orders:restart", json.dumps({"reversible": False})),
    ]
    assert undo_points(timeline) == {
        "orders:rollback": {"reversible": True, "releases": {"app1": {"previous": "1.0.1"}}}
    }


def test_with_progress_sets_status_run_and_undo_point():
    catalog = copy.deepcopy(CATALOG)
    catalog["objstore"]["strategies"] = {"app-crash": "restart"}
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), s3_error=REFUSED, app_how="unhealthy"), catalog=catalog)
    point = {"reversible": False}
    timeline = [
        entry("step", "orders-db:failover", "started"),
        entry("undo", "orders-db:failover", json.dumps(point)),
        entry("step", "orders-db:failover", "completed"),
        entry("step", "objstore:restart", "started"),
        entry("step", "objstore:restart", "failed"),
    ]
    steps = with_progress(plan, timeline)["steps"]
    assert [(step["id"], step["status"], step["run"], step["undo_point"]) for step in steps] == [
        ("orders-db:failover", "completed", False, point),
        ("objstore:restart", "failed", True, None),
    ]
    assert with_progress(plan, [])["steps"][0]["status"] == "pending"
    assert "status" not in plan["steps"][0]  # the plan given is left as it was


def test_the_timeline_helpers_read_what_the_incident_store_keeps(tmp_path):
    plan = plan_of(lab(app_how="unhealthy"))
    with IncidentStore(str(tmp_path / "incidents.sqlite")) as store:
        record, _changed = store.open(["orders"], "SEV2", "bad release")
        store.append(record["id"], "plan", plan_line(plan), action="triage", result=plan_record(plan))
        store.append(record["id"], "step", "", action="orders:rollback", result="started")
        undo = {"reversible": True, "releases": {"app1": {"previous": "1.0.1", "target": "1.0.0"}}}
        store.append(record["id"], "undo", "", action="orders:rollback", result=undo)
        store.append(record["id"], "step", "", action="orders:rollback", result="completed")
        timeline = store.timeline(record["id"])
    assert recorded_plan(timeline) == json.loads(plan_record(plan))
    resumed = with_progress(recorded_plan(timeline), since_last_plan(timeline))
    assert [(step["status"], step["run"], step["undo_point"]) for step in resumed["steps"]] == [
        ("completed", False, undo)
    ]


def test_check_step_result():
    assert check_step_result("completed") == "completed"
    with pytest.raises(RecoveryError, match="step result must be one of started, completed"):
        check_step_result("done")


def test_verdict_after_a_replacement_notes_the_replaced_instance_but_needs_the_service():
    plan = with_progress(plan_of(lab(app_how="crashed"), strategy="replace"), [])
    (step,) = plan["steps"]
    replaced = dict(plan, steps=[dict(step, status="completed")])
    # the replacement answers behind the load balancer; app1's own address refuses: the instance is gone
    after = [r for r in lab() if r["name"] != "app1 health direct"] + [
        result("app1 health direct", "http", "orders", "app1", "app", REFUSED)
    ]
    found = verdict(replaced, MEMBERS, after, [])
    assert found["passed"] is True, found
    assert found["notes"] == [f"app1 was replaced: app1 health direct no longer answers ({REFUSED})"]
    # not before the step completed, and never when the service itself does not answer
    assert verdict(plan, MEMBERS, after, [])["passed"] is False
    assert verdict(replaced, MEMBERS, lab(app_how="crashed"), [])["passed"] is False


def test_severity_comes_from_the_share_of_probes_down_and_the_tier():
    # the same rules as the severity filter: tier 0 with probes down is SEV2, with data lost SEV1
    assert plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="unhealthy"))["severity"] == "SEV2"
    assert plan_of(lab(), [integrity("pg1", ok=False), integrity("pg2", ok=False)])["severity"] == "SEV1"
    assert plan_of(lab())["severity"] == "SEV4"


def test_a_failure_mode_given_for_a_service_that_fails_through_its_dependency_is_the_dependencys():
    # an alert on orders labelled primary-down: orders has no strategy for it, orders-db fails that way
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="unhealthy"), failure_mode="primary-down")
    assert [step["id"] for step in plan["steps"]] == ["orders-db:failover"]
    # with nothing failing that way below it, the given mode is the service's own (and refused without a strategy)
    with pytest.raises(RecoveryError, match="orders looks primary-down"):
        plan_of(lab(app_how="unhealthy"), failure_mode="primary-down")
    # and a mode the service has a strategy for stays its own
    plan = plan_of(lab(pg1=pg("pg1", error=REFUSED), app_how="crashed"), failure_mode="app-crash")
    assert [step["id"] for step in plan["steps"]] == ["orders-db:failover", "orders:restart"]
