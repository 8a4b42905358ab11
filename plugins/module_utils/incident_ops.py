# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident rules every entry point follows (the ``incident`` module, ``mttr incident``, and what
comes after): bring an incident to a wanted state, and the per-service recovery lock.

The lock rule: opening an incident takes the recovery lock on each of its services, in the same
transaction as the incident itself (``IncidentStore.open(lock=True)``), so a second recovery of a service
under another unresolved incident is refused, naming it, and leaves nothing behind. ``takeover`` takes
the lock from a holder that is gone (or, deliberately, one that is not) and says so on both timelines.
Resolving an incident releases its locks.
"""

from __future__ import annotations

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
    IncidentError,
    LockHeld,
    UnknownIncident,
)

DIFF_FIELDS = ("id", "status", "severity", "summary", "services")


def held_elsewhere(store, services, incident_id):
    """The first lock on ``services`` held by another unresolved incident, as LockHeld; else None."""
    for lock in store.locks():
        if lock["service"] not in services or lock["incident_id"] == incident_id:
            continue
        try:
            holder = store.get(lock["incident_id"])
        except UnknownIncident:
            continue
        if holder["status"] != "resolved":
            return LockHeld(
                lock["service"], lock["incident_id"], lock["since"], lock["pid"], lock["stale"], lock["host"]
            )
    return None


def find(store, incident_id):
    if incident_id is None:
        return None
    try:
        return store.get(incident_id)
    except UnknownIncident:
        return None


def ensure(
    store,
    state="open",
    incident_id=None,
    services=None,
    severity=None,
    summary=None,
    note=None,
    lock=None,
    takeover=False,
    pid=None,
    where="the incident store",
    diff=False,
    opened_at=None,
):
    """Bring the incident to ``state`` (open, acknowledged, mitigated, escalated, resolved); return a result.

    ``lock`` None means: take the service locks when opening (or taking over), as the lock rule says.
    Raises LockHeld when another unresolved incident holds a service, IncidentError for anything else a
    person must fix; nothing is written in either case. ``opened_at`` dates a new incident (the detection
    time: the first failed probe, an alert's start), so durations count from the fault.
    """
    before = find(store, incident_id)
    if before is None and state != "open":
        raise IncidentError(
            f"no incident {incident_id} in {where} to mark {state}: check the id, "
            "or open it first (state=open with its services)"
        )
    if before is None and not services:
        raise IncidentError("services is required to open an incident: name the services it affects")

    services = sorted(set(services or before["services"]))
    lock = lock if lock is not None else state == "open" or takeover
    final = before["status"] if before is not None and state == "open" else state
    lock = lock and final != "resolved"
    if lock and not takeover:
        conflict = held_elsewhere(store, services, incident_id)
        if conflict is not None:
            raise conflict

    changed = False
    entry = None
    if before is None:
        record, changed = store.open(
            services,
            severity or "SEV3",
            summary or "",
            incident_id=incident_id,
            lock=lock,
            pid=pid,
            takeover=takeover,
            now=opened_at,
        )
        incident_id = record["id"]
        entry = last_entry(store, incident_id, "status")
    else:
        changed = store.update(incident_id, severity=severity, summary=summary, services=services)[1]
        if lock:
            for service in services:
                taken = store.acquire_lock(service, incident_id, pid=pid, takeover=takeover)
                changed = changed or taken["changed"]
    if state != "open" and store.transition(incident_id, state, note=note)[1]:
        changed = True
        note = None  # it went into the status entry
        entry = last_entry(store, incident_id, "status")
    if note:
        entry = store.append(incident_id, "note", note)
        changed = True

    after = store.get(incident_id)
    result = {
        "changed": changed,
        "incident": after,
        "locks": [held for held in store.locks() if held["incident_id"] == incident_id],
        "msg": f"{incident_id} ({after['severity']}) is {after['status']}",
    }
    if entry is not None:
        result["timeline_entry"] = entry
    if diff:
        result["diff"] = {
            "before": {} if before is None else {field: before[field] for field in DIFF_FIELDS},
            "after": {field: after[field] for field in DIFF_FIELDS},
        }
    return result


def last_entry(store, incident_id, kind):
    entries = [entry for entry in store.timeline(incident_id) if entry["kind"] == kind]
    return max(entries, key=lambda entry: entry["seq"]) if entries else None
