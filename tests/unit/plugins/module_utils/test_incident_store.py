"""The incident store engine on real SQLite files, with real processes for concurrency and lock holders."""

from __future__ import annotations

import datetime
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
    SEVERITIES,
    STATUSES,
    IncidentError,
    IncidentStore,
    LockHeld,
    UnknownIncident,
    default_store_path,
    durations,
    timestamp,
)

T0 = "2026-11-23T09:00:00.000000+00:00"


def at(seconds):
    """The time ``seconds`` after T0, as the store writes it."""
    return timestamp(datetime.datetime.fromisoformat(T0) + datetime.timedelta(seconds=seconds))


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state" / "incidents.sqlite")


@pytest.fixture
def store(path):
    with IncidentStore(path) as opened:
        yield opened


def rows(path, table):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def dead_pid():
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


LOCK_HOLDER = textwrap.dedent(
    """
    import sys
    from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore

    store = IncidentStore(sys.argv[1])
    lock = store.acquire_lock(sys.argv[2], sys.argv[3])
    print(lock["pid"], flush=True)
    sys.stdin.readline()
    """
)


# ----------------------------------------------------------------------------- file, schema, paths


def test_default_store_path(monkeypatch):
    assert default_store_path({"MTTR_HOME": "/srv/mttr"}, 1000) == "/srv/mttr/incidents.sqlite"
    assert default_store_path({}, 0) == "/var/lib/mttr/incidents.sqlite"
    monkeypatch.setenv("HOME", "/home/c")
    assert default_store_path({}, 1000) == "/home/c/.local/state/mttr/incidents.sqlite"


def test_new_store_is_private_wal_and_versioned(store, path):
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    store.open(["web"], now=T0)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            assert stat.S_IMODE(os.stat(path + suffix).st_mode) == 0o600
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        conn.close()


def test_reopening_keeps_the_data_and_a_newer_schema_is_refused(store, path):
    record = store.open(["web"], now=T0)[0]
    with IncidentStore(path) as again:
        assert again.get(record["id"]) == record
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 9")
    conn.close()
    with pytest.raises(IncidentError, match=r"schema version 9, newer than this mttr.recovery knows \(1\)"):
        IncidentStore(path)


def test_unwritable_place_says_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(IncidentError, match=r"cannot create the incident store .*set store \(or MTTR_HOME\)"):
        IncidentStore(str(blocker / "incidents.sqlite"))


def test_snapshot_is_a_copy_that_writes_nothing(store, path, tmp_path):
    record = store.open(["web"], now=T0)[0]
    copy = IncidentStore.snapshot(path)
    copy.transition(record["id"], "resolved")
    copy.open(["db"])
    assert copy.get(record["id"])["status"] == "resolved"
    copy.close()
    assert store.get(record["id"])["status"] == "open"
    assert (rows(path, "incidents"), rows(path, "timeline")) == (1, 1)
    empty = IncidentStore.snapshot(str(tmp_path / "nowhere" / "incidents.sqlite"))
    assert empty.list() == []
    empty.close()
    assert not (tmp_path / "nowhere").exists()


# ----------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T09:00:00Z", T0),
        ("2026-11-23T09:00:00", T0),
        ("2026-11-23T10:00:00+01:00", T0),
        (datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.UTC), T0),
        ("2026-11-23T09:00:00.500Z", at(0.5)),
    ],
)
def test_timestamp(value, expected):
    assert timestamp(value) == expected


def test_timestamp_refuses_what_is_not_a_time():
    with pytest.raises(IncidentError, match="cannot read the time 'yesterday': give ISO 8601"):
        timestamp("yesterday")
    with pytest.raises(IncidentError, match="cannot use 12 as a time"):
        timestamp(12)


def test_durations():
    record = {"opened_at": T0, "acknowledged_at": at(90.25), "mitigated_at": at(600), "resolved_at": None}
    assert durations(record) == {"time_to_acknowledge_s": 90.25, "time_to_mitigate_s": 600.0, "time_to_resolve_s": None}
    assert durations({"opened_at": T0}) == dict.fromkeys(
        ("time_to_acknowledge_s", "time_to_mitigate_s", "time_to_resolve_s")
    )


# ----------------------------------------------------------------------------- open, get, update, list


def test_open_numbers_incidents_per_day(store):
    first, changed = store.open(["web", "db", "web"], severity="SEV2", summary="502s", now=T0)
    assert changed is True
    assert first == {
        "id": "INC-20261123-001",
        "services": ["db", "web"],
        "severity": "SEV2",
        "status": "open",
        "summary": "502s",
        "opened_at": T0,
        "acknowledged_at": None,
        "mitigated_at": None,
        "resolved_at": None,
        "escalated_at": None,
        "durations": {"time_to_acknowledge_s": None, "time_to_mitigate_s": None, "time_to_resolve_s": None},
    }
    assert store.open(["web"], now=at(60))[0]["id"] == "INC-20261123-002"
    store.open(["web"], incident_id="INC-20261123-007", now=at(70))
    assert store.open(["web"], now=at(80))[0]["id"] == "INC-20261123-008"
    assert store.open(["web"], now="2026-11-24T00:00:01Z")[0]["id"] == "INC-20261124-001"
    assert store.get("INC-20261123-001") == first
    entry = store.timeline(first["id"])[0]
    assert (entry["kind"], entry["action"], entry["message"]) == ("status", "open", "opened (SEV2, db, web): 502s")


def test_reopening_an_id_changes_nothing_or_only_its_fields(store):
    record = store.open(["web"], severity="SEV2", summary="slow", incident_id="checkout-1", now=T0)[0]
    store.transition("checkout-1", "acknowledged", now=at(5))
    again, changed = store.open(["web"], severity="SEV2", summary="slow", incident_id="checkout-1", now=at(10))
    assert changed is False and again["status"] == "acknowledged" and again["opened_at"] == record["opened_at"]
    moved, changed = store.open(["web", "db"], severity="SEV1", summary="slow", incident_id="checkout-1")
    assert changed is True
    assert (moved["services"], moved["severity"], moved["status"]) == (["db", "web"], "SEV1", "acknowledged")
    assert len(store.timeline("checkout-1")) == 3  # opened, acknowledged, updated


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"services": []}, "an incident needs at least one service"),
        ({"services": ["web", " "]}, "a service is a non-empty name, got ' '"),
        ({"services": ["web"], "severity": "SEV0"}, "severity must be one of SEV1, SEV2, SEV3, SEV4, got 'SEV0'"),
        ({"services": ["web"], "incident_id": ""}, "an incident id is a non-empty string"),
    ],
)
def test_open_refuses_bad_input(store, kwargs, message):
    with pytest.raises(IncidentError, match=message):
        store.open(**kwargs)


def test_unknown_incident(store):
    for call in (
        lambda: store.get("INC-nope"),
        lambda: store.transition("INC-nope", "resolved"),
        lambda: store.update("INC-nope", severity="SEV1"),
        lambda: store.append("INC-nope", "note", "x"),
        lambda: store.timeline("INC-nope"),
    ):
        with pytest.raises(UnknownIncident, match=r"no incident INC-nope in .*incidents.sqlite: check the id"):
            call()


def test_update(store):
    incident_id = store.open(["web"], summary="slow", now=T0)[0]["id"]
    record, changed = store.update(incident_id, severity="SEV1", summary="down")
    assert changed is True and (record["severity"], record["summary"]) == ("SEV1", "down")
    assert store.update(incident_id, severity="SEV1", summary="down", services=["web"]) == (record, False)
    assert store.update(incident_id) == (record, False)
    entry = store.timeline(incident_id)[-1]
    assert entry["kind"] == "update" and entry["message"] == "severity 'SEV3' -> 'SEV1'; summary 'slow' -> 'down'"
    with pytest.raises(IncidentError, match="severity must be one of"):
        store.update(incident_id, severity="high")


def test_list(store):
    web = store.open(["web"], now=T0)[0]["id"]
    both = store.open(["web", "db"], now=at(1))[0]["id"]
    db = store.open(["db"], now=at(2))[0]["id"]
    store.transition(both, "resolved", now=at(3))
    assert [r["id"] for r in store.list()] == [web, both, db]
    assert [r["id"] for r in store.list(status="open")] == [web, db]
    assert [r["id"] for r in store.list(status=["resolved", "escalated"])] == [both]
    assert [r["id"] for r in store.list(service="db")] == [both, db]
    assert [r["id"] for r in store.list(status="open", service="web")] == [web]
    with pytest.raises(IncidentError, match="status must be one of open, acknowledged"):
        store.list(status="closed")


# ----------------------------------------------------------------------------- state machine

# From each status (reached by the path before it), where each target leads.
REACH = {
    "open": [],
    "acknowledged": ["acknowledged"],
    "mitigated": ["acknowledged", "mitigated"],
    "resolved": ["acknowledged", "mitigated", "resolved"],
    "escalated": ["acknowledged", "escalated"],
}
ALLOWED = {
    "open": {"acknowledged", "mitigated", "resolved", "escalated"},
    "acknowledged": {"mitigated", "resolved", "escalated"},
    "mitigated": {"resolved", "escalated"},
    "resolved": set(),
    "escalated": {"acknowledged", "mitigated", "resolved"},
}
TABLE = [
    (source, target, "same" if source == target else "ok" if target in ALLOWED[source] else "refused")
    for source in STATUSES
    for target in STATUSES
]


@pytest.mark.parametrize(("source", "target", "outcome"), TABLE, ids=[f"{s}->{t}" for s, t, o in TABLE])
def test_state_machine(store, source, target, outcome):
    incident_id = store.open(["web"], now=T0)[0]["id"]
    for step, status in enumerate(REACH[source], start=1):
        store.transition(incident_id, status, now=at(step * 60))
    before = store.get(incident_id)
    entries = len(store.timeline(incident_id))
    if outcome == "refused":
        with pytest.raises(IncidentError) as info:
            store.transition(incident_id, target, now=at(3600))
        if source == "resolved":
            assert f"incident {incident_id} was resolved at {at(180)} and a resolved incident is final" in str(
                info.value
            )
        else:
            assert f"incident {incident_id} is {source} and cannot go back to {target}" in str(info.value)
        assert store.get(incident_id) == before and len(store.timeline(incident_id)) == entries
        return
    record, changed = store.transition(incident_id, target, note="why", now=at(3600))
    if outcome == "same":
        assert (record, changed) == (before, False) and len(store.timeline(incident_id)) == entries
        return
    assert changed is True and record["status"] == target
    assert record[f"{target}_at"] == (before[f"{target}_at"] or at(3600))
    entry = store.timeline(incident_id)[-1]
    assert (entry["kind"], entry["action"], entry["result"]) == ("status", target, source)
    assert entry["message"].startswith(f"{source} -> {target}") and entry["message"].endswith(": why")


def test_skipping_forward_sets_the_skipped_timestamps(store):
    incident_id = store.open(["web"], now=T0)[0]["id"]
    record = store.transition(incident_id, "resolved", now=at(1800))[0]
    assert record["acknowledged_at"] == record["mitigated_at"] == record["resolved_at"] == at(1800)
    assert record["durations"] == {
        "time_to_acknowledge_s": 1800.0,
        "time_to_mitigate_s": 1800.0,
        "time_to_resolve_s": 1800.0,
    }
    message = store.timeline(incident_id)[-1]["message"]
    assert message == "open -> resolved (skipped acknowledged and mitigated: set to the same time)"


def test_timestamps_are_first_reached_and_durations_follow(store):
    incident_id = store.open(["web"], now=T0)[0]["id"]
    store.transition(incident_id, "acknowledged", now=at(30))
    store.transition(incident_id, "escalated", now=at(60))
    store.transition(incident_id, "acknowledged", now=at(90))
    store.transition(incident_id, "escalated", now=at(120))
    record = store.transition(incident_id, "mitigated", now=at(150.5))[0]
    assert (record["acknowledged_at"], record["escalated_at"], record["mitigated_at"]) == (at(30), at(60), at(150.5))
    assert record["durations"] == {
        "time_to_acknowledge_s": 30.0,
        "time_to_mitigate_s": 150.5,
        "time_to_resolve_s": None,
    }
    assert [e["message"] for e in store.timeline(incident_id) if e["kind"] == "status"][1:] == [
        "open -> acknowledged",
        "acknowledged -> escalated",
        "escalated -> acknowledged",
        "acknowledged -> escalated",
        "escalated -> mitigated",
    ]


def test_transition_refuses_bad_status_and_times_before_opening(store):
    incident_id = store.open(["web"], now=T0)[0]["id"]
    with pytest.raises(IncidentError, match="status must be one of open, acknowledged, mitigated, resolved, escalated"):
        store.transition(incident_id, "closed")
    with pytest.raises(IncidentError, match=f"cannot mark incident {incident_id} acknowledged at .*opened later"):
        store.transition(incident_id, "acknowledged", now=at(-1))


# ----------------------------------------------------------------------------- timeline


def test_timeline_is_ordered_by_time_then_seq(store):
    incident_id = store.open(["web"], now=T0)[0]["id"]
    late = store.append(incident_id, "task", "restart", host="web1", action="systemd", result="changed", time=at(20))
    early = store.append(incident_id, "task", "probe", duration=0.25, result={"status": "ok"}, time=at(10))
    tie = store.append(incident_id, "note", "same time", time=at(20))
    assert late == {
        "seq": late["seq"],
        "incident_id": incident_id,
        "time": at(20),
        "kind": "task",
        "message": "restart",
        "host": "web1",
        "action": "systemd",
        "result": "changed",
        "duration": None,
    }
    assert early["seq"] > late["seq"] and early["result"] == '{"status": "ok"}' and early["duration"] == 0.25
    assert [e["message"] for e in store.timeline(incident_id)][1:] == ["probe", "restart", "same time"]
    assert store.timeline(incident_id)[-1] == tie
    with pytest.raises(IncidentError, match="a timeline entry needs a kind"):
        store.append(incident_id, " ")


# ----------------------------------------------------------------------------- locks


def test_lock_acquire_reacquire_release(store):
    incident_id = store.open(["web"], now=T0)[0]["id"]
    lock = store.acquire_lock("web", incident_id)
    assert lock["changed"] is True and lock["previous"] is None
    assert (lock["incident_id"], lock["pid"], lock["stale"]) == (incident_id, os.getpid(), False)
    again = store.acquire_lock("web", incident_id, pid=os.getppid())
    assert again["changed"] is False and again["since"] == lock["since"] and again["pid"] == os.getppid()
    assert store.locks() == [{k: again[k] for k in ("service", "incident_id", "since", "pid", "host", "stale")}]
    assert store.release_lock("web", incident_id) is True
    assert store.release_lock("web", incident_id) is False
    assert store.locks() == []
    assert [e["action"] for e in store.timeline(incident_id) if e["kind"] == "lock"] == ["lock", "unlock"]


def test_lock_contention_between_two_stores(path):
    with IncidentStore(path) as one, IncidentStore(path) as two:
        first = one.open(["web"], now=T0)[0]["id"]
        second = two.open(["web"], now=at(60))[0]["id"]
        one.acquire_lock("web", first)
        with pytest.raises(LockHeld) as info:
            two.acquire_lock("web", second)
        held = info.value
        assert (held.service, held.incident_id, held.pid, held.stale) == ("web", first, os.getpid(), False)
        assert held.since == one.locks()[0]["since"]
        assert str(held) == (
            f"the recovery lock on web is held by incident {first} since {held.since} (pid {os.getpid()}, "
            f"still running); wait for that incident to be resolved, or if incident {first} is dead take the "
            "lock over (takeover=true)"
        )
        assert [lock["incident_id"] for lock in two.locks()] == [first]
        assert [e["kind"] for e in two.timeline(second)] == ["status"]


def test_lock_held_by_another_process_then_stale_when_it_exits(store, path):
    holder_id = store.open(["db"], now=T0)[0]["id"]
    mine = store.open(["db"], now=at(60))[0]["id"]
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, path, "db", holder_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        holder_pid = int(holder.stdout.readline())
        assert holder_pid == holder.pid
        with pytest.raises(LockHeld) as info:
            store.acquire_lock("db", mine)
        assert (info.value.incident_id, info.value.pid, info.value.stale) == (holder_id, holder_pid, False)
    finally:
        holder.communicate("done\n", timeout=30)
    assert holder.returncode == 0
    with pytest.raises(LockHeld, match=f"pid {holder_pid}, which is no longer running: the lock is stale") as info:
        store.acquire_lock("db", mine)
    assert info.value.stale is True and store.locks()[0]["stale"] is True


def test_takeover_of_a_stale_lock_is_on_both_timelines(store):
    dead = store.open(["db", "web"], now=T0)[0]["id"]
    mine = store.open(["db"], now=at(60))[0]["id"]
    pid = dead_pid()
    since = store.acquire_lock("db", dead, pid=pid)["since"]
    with pytest.raises(LockHeld) as info:
        store.acquire_lock("db", mine)
    assert info.value.stale is True and info.value.since == since
    lock = store.acquire_lock("db", mine, takeover=True)
    assert lock["changed"] is True and lock["incident_id"] == mine
    assert lock["previous"]["incident_id"] == dead and lock["previous"]["stale"] is True
    assert store.timeline(mine)[-1]["message"] == (
        f"took over the stale recovery lock on db from incident {dead} (held since {since} by pid {pid} on "
        f"{lock['host']})"
    )
    assert (
        store.timeline(dead)[-1]["message"]
        == f"the recovery lock on db was taken over by incident {mine} (pid {os.getpid()})"
    )
    assert store.timeline(dead)[-1]["action"] == "lock_lost"
    assert [(lock["service"], lock["incident_id"]) for lock in store.locks()] == [("db", mine)]


def test_takeover_of_a_live_lock(store):
    first = store.open(["db"], now=T0)[0]["id"]
    second = store.open(["db"], now=at(60))[0]["id"]
    store.acquire_lock("db", first)
    lock = store.acquire_lock("db", second, takeover=True)
    assert lock["previous"]["stale"] is False
    assert store.timeline(second)[-1]["message"].startswith(
        f"took over the live recovery lock on db from incident {first}"
    )
    with pytest.raises(LockHeld):
        store.acquire_lock("db", first)


def test_resolving_releases_locks_and_resolved_incidents_take_none(store):
    first = store.open(["db", "web"], now=T0)[0]["id"]
    second = store.open(["db"], now=at(60))[0]["id"]
    store.acquire_lock("db", first)
    store.acquire_lock("web", first)
    store.acquire_lock("queue", second)
    store.transition(first, "resolved", now=at(120))
    assert [(lock["service"], lock["incident_id"]) for lock in store.locks()] == [("queue", second)]
    released = [e["message"] for e in store.timeline(first) if e["action"] == "unlock"]
    assert released == ["released the recovery lock on db (resolved)", "released the recovery lock on web (resolved)"]
    assert store.acquire_lock("db", second)["previous"] is None
    with pytest.raises(IncidentError, match=f"incident {first} is resolved: it cannot take the recovery lock on db"):
        store.acquire_lock("db", first)


def test_a_lock_left_by_a_resolved_incident_is_reclaimed(store, path):
    first = store.open(["db"], now=T0)[0]["id"]
    second = store.open(["db"], now=at(60))[0]["id"]
    store.transition(first, "resolved", now=at(120))
    conn = sqlite3.connect(path)  # a lock a resolved incident kept (written by an older tool, say)
    conn.execute("INSERT INTO locks VALUES ('db', ?, ?, ?, 'elsewhere')", (first, at(1), 1))
    conn.commit()
    conn.close()
    lock = store.acquire_lock("db", second)
    assert lock["previous"]["incident_id"] == first and lock["incident_id"] == second
    assert store.timeline(second)[-1]["message"] == f"reclaimed the recovery lock on db left by incident {first}"


def test_a_lock_from_another_machine_is_never_called_stale(store, path):
    first = store.open(["db"], now=T0)[0]["id"]
    second = store.open(["db"], now=at(60))[0]["id"]
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO locks VALUES ('db', ?, ?, ?, 'other-controller')", (first, at(1), dead_pid()))
    conn.commit()
    conn.close()
    with pytest.raises(LockHeld, match="on other-controller, another machine, so whether it still runs is unknown"):
        store.acquire_lock("db", second)


# ----------------------------------------------------------------------------- concurrency

WORKER = textwrap.dedent(
    """
    import sys
    from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore

    path, worker, shared = sys.argv[1], sys.argv[2], sys.argv[3]
    print("ready", flush=True)
    sys.stdin.readline()
    store = IncidentStore(path)
    mine = [store.open([f"svc-{worker}"], summary=f"{worker}/{n}", now="2026-11-23T12:00:00Z")[0]["id"]
            for n in range(20)]
    for n in range(50):
        for incident_id in mine:
            store.append(incident_id, "task", f"{worker}:{n}", host=f"h{worker}")
        store.append(shared, "task", f"{worker}:{n}", host=f"h{worker}")
    store.close()
    """
)


def test_concurrent_writers_in_six_processes(tmp_path):
    path = str(tmp_path / "incidents.sqlite")
    with IncidentStore(path) as store:
        shared = store.open(["shared"], incident_id="shared", now=T0)[0]["id"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, path, str(number), shared],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(6)
    ]
    for worker in workers:
        assert worker.stdout.readline() == "ready\n"
    started = time.monotonic()
    for worker in workers:  # all start together
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        stderr = worker.communicate(timeout=120)[1]
        assert worker.returncode == 0, stderr
    elapsed = time.monotonic() - started

    with IncidentStore(path) as store:
        incidents = [record for record in store.list() if record["id"] != shared]
        assert len(incidents) == 120
        ids = [record["id"] for record in incidents]
        assert sorted(ids) == [f"INC-20261123-{n:03d}" for n in range(1, 121)]
        per_worker = {}
        for record in incidents:
            entries = store.timeline(record["id"])
            assert [e["kind"] for e in entries] == ["status"] + ["task"] * 50
            worker, number = record["summary"].split("/")
            assert record["services"] == [f"svc-{worker}"]
            assert [e["message"] for e in entries[1:]] == [f"{worker}:{n}" for n in range(50)]
            seqs = [e["seq"] for e in entries]
            assert seqs == sorted(seqs)
            per_worker.setdefault(worker, set()).add(int(number))
        assert per_worker == {str(w): set(range(20)) for w in range(6)}
        shared_entries = store.timeline(shared)[1:]
        assert len(shared_entries) == 300
        for worker in range(6):
            messages = [e["message"] for e in shared_entries if e["host"] == f"h{worker}"]
            assert messages == [f"{worker}:{n}" for n in range(50)]
    assert rows(path, "timeline") == 1 + 120 * 51 + 300
    assert elapsed < 60, f"six writers took {elapsed:.1f} s"


CREATOR = textwrap.dedent(
    """
    import sys
    from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore

    print("ready", flush=True)
    sys.stdin.readline()
    with IncidentStore(sys.argv[1]) as store:
        for n in range(5):
            store.open([f"svc-{sys.argv[2]}"], now="2026-11-23T12:00:00Z")
    """
)


def test_six_processes_creating_the_store_at_once(tmp_path):
    path = str(tmp_path / "new" / "incidents.sqlite")
    creators = [
        subprocess.Popen(
            [sys.executable, "-c", CREATOR, path, str(number)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(6)
    ]
    for creator in creators:
        assert creator.stdout.readline() == "ready\n"
    for creator in creators:
        creator.stdin.write("go\n")
        creator.stdin.flush()
    for creator in creators:
        stderr = creator.communicate(timeout=120)[1]
        assert creator.returncode == 0, stderr
    with IncidentStore(path) as store:
        assert sorted(record["id"] for record in store.list()) == [f"INC-20261123-{n:03d}" for n in range(1, 31)]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_severities_and_statuses_are_the_published_ones():
    assert STATUSES == ("open", "acknowledged", "mitigated", "resolved", "escalated")
    assert SEVERITIES == ("SEV1", "SEV2", "SEV3", "SEV4")


def test_open_with_lock_takes_every_service_lock_in_one_transaction(store):
    first = store.open(["web", "db"], now=T0, lock=True, pid=os.getpid())[0]
    assert {lock["service"]: lock["incident_id"] for lock in store.locks()} == {"db": first["id"], "web": first["id"]}
    with pytest.raises(LockHeld, match=f"held by incident {first['id']}"):
        store.open(["search", "db"], now=T0, lock=True)
    assert [record["id"] for record in store.list()] == [first["id"]], "a refused open writes nothing"
    assert [lock["service"] for lock in store.locks()] == ["db", "web"]
    taken = store.open(["db"], now=T0, lock=True, takeover=True)[0]
    assert {lock["service"]: lock["incident_id"] for lock in store.locks()} == {"db": taken["id"], "web": first["id"]}
    assert any(entry["action"] == "lock_lost" for entry in store.timeline(first["id"]))
