"""The incident module through the unit-test harness, on real SQLite stores."""

from __future__ import annotations

import functools
import os
import re
import sqlite3

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from ansible_collections.mttr.recovery.plugins.modules import incident
from ansible_collections.mttr.recovery.tests.unit.plugins.modules import utils
from ansible_collections.mttr.recovery.tests.unit.plugins.modules.utils import AnsibleFailJson

TABLES = ("incidents", "timeline", "locks")

run_module = functools.partial(utils.run_module, incident)


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "mttr" / "incidents.sqlite")


def counts(path):
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}
    finally:
        conn.close()


def open_one(store, **extra):
    args = dict(
        {"store": store, "services": ["orders-db", "orders-api"], "severity": "SEV2", "summary": "502s"}, **extra
    )
    return run_module(args)


def test_open_acknowledge_mitigate_resolve(store):
    opened = open_one(store, note="paged by the health check")
    incident_id = opened["incident"]["id"]
    assert opened["changed"] is True and incident_id.startswith("INC-")
    assert opened["incident"]["status"] == "open" and opened["incident"]["services"] == ["orders-api", "orders-db"]
    assert opened["store"] == store and opened["msg"] == f"{incident_id} (SEV2) is open"
    assert [(lock["service"], lock["stale"]) for lock in opened["locks"]] == [
        ("orders-api", False),
        ("orders-db", False),
    ]
    assert opened["timeline_entry"]["kind"] == "note"
    assert opened["timeline_entry"]["message"] == "paged by the health check"

    acked = run_module({"store": store, "id": incident_id, "state": "acknowledged", "note": "on it"})
    assert acked["changed"] is True and acked["incident"]["status"] == "acknowledged"
    entry = acked["timeline_entry"]
    assert (entry["kind"], entry["message"], entry["action"]) == (
        "status",
        "open -> acknowledged: on it",
        "acknowledged",
    )
    assert acked["incident"]["durations"]["time_to_acknowledge_s"] >= 0
    assert len(acked["locks"]) == 2

    mitigated = run_module({"store": store, "id": incident_id, "state": "mitigated"})
    assert mitigated["timeline_entry"]["message"] == "acknowledged -> mitigated"

    resolved = run_module({"store": store, "id": incident_id, "state": "resolved", "note": "rejoined"})
    record = resolved["incident"]
    assert resolved["changed"] is True and record["status"] == "resolved" and resolved["locks"] == []
    assert all(record["durations"][key] is not None for key in record["durations"])
    assert record["durations"]["time_to_resolve_s"] >= record["durations"]["time_to_mitigate_s"]
    with IncidentStore(store) as check:
        kinds = [entry["kind"] for entry in check.timeline(incident_id)]
        assert check.locks() == []
    assert kinds.count("status") == 4 and kinds.count("lock") == 4 and kinds.count("note") == 1


def test_idempotent(store):
    first = open_one(store, id="INC-CHECKOUT-1")
    assert first["changed"] is True and first["incident"]["id"] == "INC-CHECKOUT-1"
    before = counts(store)
    again = open_one(store, id="INC-CHECKOUT-1")
    assert again["changed"] is False and again["incident"] == first["incident"] and "timeline_entry" not in again
    assert counts(store) == before
    for state in ("acknowledged", "resolved"):
        assert run_module({"store": store, "id": "INC-CHECKOUT-1", "state": state})["changed"] is True
        settled = counts(store)
        assert run_module({"store": store, "id": "INC-CHECKOUT-1", "state": state})["changed"] is False
        assert counts(store) == settled
    # The open task of the same play, run again after the incident moved on, changes nothing either.
    reopened = open_one(store, id="INC-CHECKOUT-1")
    assert reopened["changed"] is False and reopened["incident"]["status"] == "resolved"
    assert counts(store) == settled


def test_open_updates_fields_of_an_existing_incident(store):
    open_one(store, id="INC-X")
    run_module({"store": store, "id": "INC-X", "state": "acknowledged"})
    result = run_module({"store": store, "id": "INC-X", "severity": "SEV1"}, diff=True)
    assert result["changed"] is True and result["incident"]["status"] == "acknowledged"
    assert result["diff"]["before"]["severity"] == "SEV2" and result["diff"]["after"]["severity"] == "SEV1"
    assert result["diff"]["before"]["status"] == result["diff"]["after"]["status"] == "acknowledged"


def test_note_alone_is_a_change_every_time(store):
    incident_id = open_one(store)["incident"]["id"]
    for number in range(2):
        result = run_module({"store": store, "id": incident_id, "state": "open", "note": f"update {number}"})
        assert result["changed"] is True
        assert (result["timeline_entry"]["kind"], result["timeline_entry"]["message"]) == ("note", f"update {number}")


def test_check_mode_writes_nothing(store):
    predicted = run_module({"store": store, "services": ["web"], "id": "INC-C"}, check=True)
    assert predicted["changed"] is True and predicted["incident"]["status"] == "open"
    assert not os.path.exists(os.path.dirname(store))

    generated = run_module({"store": store, "services": ["web"]}, check=True)["incident"]["id"]
    assert run_module({"store": store, "services": ["web"]})["incident"]["id"] == generated

    before = counts(store)
    size = os.path.getsize(store)
    result = run_module({"store": store, "id": generated, "state": "resolved", "note": "x"}, check=True, diff=True)
    assert result["changed"] is True and result["incident"]["status"] == "resolved" and result["locks"] == []
    assert result["diff"]["before"]["status"] == "open" and result["diff"]["after"]["status"] == "resolved"
    assert (
        result["timeline_entry"]["message"]
        == "open -> resolved (skipped acknowledged and mitigated: set to the same time): x"
    )
    note = run_module({"store": store, "id": generated, "note": "only a note"}, check=True)
    assert note["changed"] is True
    other = run_module({"store": store, "services": ["db"], "severity": "SEV1"}, check=True)
    assert other["changed"] is True
    assert counts(store) == before and os.path.getsize(store) == size
    with IncidentStore(store) as check:
        assert check.get(generated)["status"] == "open"
        assert [lock["service"] for lock in check.locks()] == ["web"]

    unchanged = run_module({"store": store, "id": generated, "state": "open", "services": ["web"]}, check=True)
    assert unchanged["changed"] is False


def test_diff_of_a_new_incident_and_a_transition(store):
    opened = run_module({"store": store, "services": ["web"], "summary": "slow"}, diff=True)
    incident_id = opened["incident"]["id"]
    assert opened["diff"] == {
        "before": {},
        "after": {"id": incident_id, "status": "open", "severity": "SEV3", "summary": "slow", "services": ["web"]},
    }
    moved = run_module({"store": store, "id": incident_id, "state": "escalated", "summary": "down"}, diff=True)
    assert moved["diff"]["before"] == dict(opened["diff"]["after"])
    assert moved["diff"]["after"] == dict(opened["diff"]["after"], status="escalated", summary="down")
    assert "diff" not in run_module({"store": store, "id": incident_id, "state": "escalated"})


def test_default_store_comes_from_mttr_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MTTR_HOME", str(tmp_path / "home"))
    result = run_module({"services": ["web"]})
    assert result["store"] == str(tmp_path / "home" / "incidents.sqlite")
    assert counts(result["store"])["incidents"] == 1


def test_lock_held_names_the_other_incident(store):
    first = open_one(store)
    first_id = first["incident"]["id"]
    since = {lock["service"]: lock["since"] for lock in first["locks"]}["orders-db"]
    failed = run_module({"store": store, "services": ["orders-db"]}, AnsibleFailJson)
    assert f"held by incident {first_id} since {since}" in failed["msg"]
    assert f"if incident {first_id} is dead take the lock over (takeover=true)" in failed["msg"]
    assert failed["lock"]["incident_id"] == first_id and failed["lock"]["stale"] is False
    assert counts(store)["incidents"] == 1  # refused before opening anything

    unlocked = run_module({"store": store, "services": ["orders-db"], "lock": False})
    assert unlocked["changed"] is True and unlocked["locks"] == []
    second_id = unlocked["incident"]["id"]
    taken = run_module({"store": store, "id": second_id, "state": "acknowledged", "takeover": True})
    assert [lock["service"] for lock in taken["locks"]] == ["orders-db"]
    with IncidentStore(store) as check:
        assert check.timeline(first_id)[-1]["message"].startswith(
            f"the recovery lock on orders-db was taken over by incident {second_id}"
        )
        assert [(lock["service"], lock["incident_id"]) for lock in check.locks()] == [
            ("orders-api", first_id),
            ("orders-db", second_id),
        ]


def test_locks_are_free_again_once_resolved(store):
    first_id = open_one(store)["incident"]["id"]
    run_module({"store": store, "id": first_id, "state": "resolved"})
    second = open_one(store)
    assert second["changed"] is True and len(second["locks"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"id": "INC-NOPE", "state": "acknowledged"},
            r"no incident INC-NOPE in .*incidents.sqlite to mark acknowledged",
        ),
        ({"id": "INC-NOPE"}, "services is required to open an incident"),
        ({}, "services is required to open an incident"),
        ({"state": "resolved"}, "state is resolved but all of the following are missing: id"),
        ({"services": ["web"], "severity": "SEV9"}, "value of severity must be one of: SEV1, SEV2, SEV3, SEV4"),
        ({"services": ["web", ""]}, "a service is a non-empty name"),
    ],
)
def test_errors(store, args, message):
    failed = run_module(dict(args, store=store), AnsibleFailJson)
    assert failed["failed"] is True
    assert re.search(message, failed["msg"]), failed["msg"]


def test_bad_transition(store):
    incident_id = open_one(store)["incident"]["id"]
    run_module({"store": store, "id": incident_id, "state": "mitigated"})
    failed = run_module({"store": store, "id": incident_id, "state": "acknowledged"}, AnsibleFailJson)
    assert f"incident {incident_id} is mitigated and cannot go back to acknowledged" in failed["msg"]
    run_module({"store": store, "id": incident_id, "state": "resolved"})
    failed = run_module({"store": store, "id": incident_id, "state": "escalated", "note": "x"}, AnsibleFailJson)
    assert "a resolved incident is final: open a new incident" in failed["msg"]
    with IncidentStore(store) as check:
        assert [entry["kind"] for entry in check.timeline(incident_id)].count("note") == 0


def test_unusable_store(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    failed = run_module({"store": str(blocker / "incidents.sqlite"), "services": ["web"]}, AnsibleFailJson)
    assert "cannot create the incident store" in failed["msg"]


def test_controller_pid_is_a_running_ancestor():
    pid = incident.controller_pid()
    assert pid > 0
    os.kill(pid, 0)
