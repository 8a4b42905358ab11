#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: incident
short_description: Open an incident, move it through its statuses, and keep its timeline and recovery locks
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - Keeps the incident record in a SQLite file on the controller, safe for several playbooks writing at once.
  - O(state=open) without O(id) opens a new incident, numbered C(INC-YYYYMMDD-NNN) (UTC day). With O(id), an
    incident that already exists is only made to match O(services), O(severity) and O(summary); its status
    never moves back, so the task can run again.
  - Other states move the incident along C(open) -> C(acknowledged) -> C(mitigated) -> C(resolved). Skipping
    forward is allowed and sets the skipped timestamps to the same time. C(escalated) is reachable from any
    unresolved status and leads to C(acknowledged), C(mitigated) or C(resolved). Going back is refused, and a
    resolved incident is final.
  - Every change lands on the incident's append-only timeline, with a C(status), C(update), C(lock) or
    C(note) entry.
  - Opening takes a recovery lock on each of the incident's services, so two incidents do not recover the same
    service at once; resolving releases them. A lock held by another unresolved incident fails the task,
    naming that incident; pass O(takeover=true) when that incident is dead.
options:
  id:
    description:
      - The incident's id. Required for every O(state) but C(open).
      - Give it when opening too, to make the task idempotent.
    type: str
  state:
    description: The status the incident should have.
    type: str
    choices: [open, acknowledged, mitigated, resolved, escalated]
    default: open
  services:
    description:
      - The services the incident affects. Required to open a new incident.
      - For an existing incident, replaces its services; omitted, they stay.
    type: list
    elements: str
  severity:
    description:
      - The incident's severity.
      - C(SEV3) when a new incident is opened without it; for an existing incident, omitted, it stays.
    type: str
    choices: [SEV1, SEV2, SEV3, SEV4]
  summary:
    description: One line about the incident. Omitted, an existing incident keeps its summary.
    type: str
  note:
    description:
      - Text added to the timeline. With a status change it goes into that change's entry; otherwise it is a
        C(note) entry of its own, which is a change every time.
    type: str
  store:
    description:
      - The incident store, a SQLite file created (mode 0600, directory 0700) when missing.
      - Defaults to C(incidents.sqlite) in the mttr home, C($MTTR_HOME), else C(/var/lib/mttr) for root,
        else C(~/.local/state/mttr).
    type: path
  lock:
    description:
      - Take the recovery lock on each of the incident's services.
      - Defaults to true when O(state=open) or O(takeover=true), false otherwise.
      - Locks are released when the incident is resolved, whatever this says.
    type: bool
  takeover:
    description:
      - Take recovery locks held by another unresolved incident, whether its process still runs or not.
        Both incidents' timelines record it.
      - Only for an incident known to be dead; the failure message says whether its process still runs.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Runs on a throwaway in-memory copy of the store, so it reports exactly what would change and
      writes nothing.
  diff_mode:
    support: full
    description: Before and after show the incident's status, severity, summary and services.
notes:
  - The store is on the host that runs the module; keep it on the controller with C(delegate_to=localhost)
    and C(run_once=true), so every host of a play shares one incident.
  - The lock records the process id of the C(ansible-playbook) (or C(ansible-runner)) process the module runs
    under; when that process has gone, the lock is reported stale.
  - Times are ISO 8601 in UTC with microseconds.
"""

EXAMPLES = r"""
- name: Open an incident for the orders service (once, on the controller)
  mttr.recovery.incident:
    id: "{{ incident_id | default(omit) }}"
    services: [orders-db, orders-api]
    severity: SEV2
    summary: Orders API returns 502, primary database not answering
  delegate_to: localhost
  run_once: true
  register: opened

- name: Acknowledge it
  mttr.recovery.incident:
    id: "{{ opened.incident.id }}"
    state: acknowledged
    note: on-call has it
  delegate_to: localhost
  run_once: true

- name: Record what the recovery did
  mttr.recovery.incident:
    id: "{{ opened.incident.id }}"
    state: mitigated
    note: failed over to the standby; writes accepted again
  delegate_to: localhost
  run_once: true

- name: Resolve it, releasing the recovery locks
  mttr.recovery.incident:
    id: "{{ opened.incident.id }}"
    state: resolved
    note: old primary rejoined as a standby
  delegate_to: localhost
  run_once: true
  register: resolved

- name: Show time to resolve
  ansible.builtin.debug:
    msg: "{{ resolved.incident.id }} resolved in {{ resolved.incident.durations.time_to_resolve_s }} s"

- name: Take over the locks of an incident whose run died
  mttr.recovery.incident:
    id: INC-20261123-004
    services: [orders-db]
    summary: Orders database down again
    takeover: true
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
incident:
  description: The incident after the task (what it would be, in check mode).
  returned: always
  type: dict
  contains:
    id:
      description: The incident's id.
      type: str
      sample: INC-20261123-001
    services:
      description: The services it affects, sorted.
      type: list
      elements: str
      sample: [orders-api, orders-db]
    severity:
      description: C(SEV1) to C(SEV4).
      type: str
      sample: SEV2
    status:
      description: C(open), C(acknowledged), C(mitigated), C(resolved) or C(escalated).
      type: str
      sample: resolved
    summary:
      description: One line about the incident.
      type: str
      sample: Orders API returns 502
    opened_at:
      description: When it was opened.
      type: str
      sample: "2026-11-23T09:00:00.000000+00:00"
    acknowledged_at:
      description: When it was first acknowledged, or null.
      type: str
      sample: "2026-11-23T09:02:10.250000+00:00"
    mitigated_at:
      description: When it was first mitigated, or null.
      type: str
      sample: "2026-11-23T09:11:45.000000+00:00"
    resolved_at:
      description: When it was resolved, or null.
      type: str
      sample: "2026-11-23T09:40:00.000000+00:00"
    escalated_at:
      description: When it was first escalated, or null.
      type: str
      sample: null
    durations:
      description: Seconds from opening to each milestone; null for those not reached.
      type: dict
      contains:
        time_to_acknowledge_s:
          description: Seconds to acknowledgement.
          type: float
        time_to_mitigate_s:
          description: Seconds to mitigation.
          type: float
        time_to_resolve_s:
          description: Seconds to resolution.
          type: float
      sample: {"time_to_acknowledge_s": 130.25, "time_to_mitigate_s": 705.0, "time_to_resolve_s": 2400.0}
timeline_entry:
  description: The status or note entry the task added to the timeline (the note's when both).
  returned: when a status change or note was recorded
  type: dict
  contains:
    seq:
      description: The entry's number in the store, increasing.
      type: int
    incident_id:
      description: The incident's id.
      type: str
    time:
      description: When it happened.
      type: str
    kind:
      description: C(status) or C(note).
      type: str
    message:
      description: What happened, such as C(acknowledged -> mitigated), then the note if any.
      type: str
    host:
      description: The host concerned, if any.
      type: str
    action:
      description: For a status entry, the new status.
      type: str
    result:
      description: For a status entry, the previous status.
      type: str
    duration:
      description: Seconds, if the entry has a duration.
      type: float
  sample:
    {"seq": 42, "incident_id": "INC-20261123-001", "time": "2026-11-23T09:11:45.000000+00:00", "kind": "status",
     "message": "acknowledged -> mitigated: failed over", "host": null, "action": "mitigated",
     "result": "acknowledged", "duration": null}
locks:
  description: The recovery locks the incident holds after the task.
  returned: always
  type: list
  elements: dict
  contains:
    service:
      description: The locked service.
      type: str
    incident_id:
      description: The incident holding it.
      type: str
    since:
      description: When it was taken.
      type: str
    pid:
      description: The process that took it.
      type: int
    host:
      description: The machine that process runs on.
      type: str
    stale:
      description: Whether that process has gone.
      type: bool
  sample:
    - {"service": "orders-db", "incident_id": "INC-20261123-001", "since": "2026-11-23T09:00:00.120000+00:00",
       "pid": 41235, "host": "controller", "stale": false}
store:
  description: The incident store used.
  returned: always
  type: str
  sample: /var/lib/mttr/incidents.sqlite
"""


from ansible_collections.mttr.recovery.plugins.module_utils.incident_ops import ensure
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
    SEVERITIES,
    STATUSES,
    IncidentError,
    IncidentStore,
    LockHeld,
    default_store_path,
)
from ansible_collections.mttr.recovery.plugins.module_utils.module import MttrModule
from ansible_collections.mttr.recovery.plugins.module_utils.processes import controller_pid


def run(module, store):
    """Bring the incident to the wanted state in ``store`` (the rules are incident_ops'); return the result."""
    params = module.params
    result = ensure(
        store,
        state=params["state"],
        incident_id=params["id"],
        services=params["services"],
        severity=params["severity"],
        summary=params["summary"],
        note=params["note"],
        lock=params["lock"],
        takeover=params["takeover"],
        pid=controller_pid(),
        where=store_path(module),
        diff=module._diff,
    )
    result["store"] = store_path(module)
    return result


def store_path(module):
    return module.params["store"] or default_store_path()


def main():
    module = MttrModule(
        argument_spec={
            "id": {"type": "str"},
            "state": {"type": "str", "choices": list(STATUSES), "default": "open"},
            "services": {"type": "list", "elements": "str"},
            "severity": {"type": "str", "choices": list(SEVERITIES)},
            "summary": {"type": "str"},
            "note": {"type": "str"},
            "store": {"type": "path"},
            "lock": {"type": "bool"},
            "takeover": {"type": "bool", "default": False},
        },
        required_if=[("state", status, ["id"]) for status in STATUSES if status != "open"],
        supports_check_mode=True,
    )
    path = store_path(module)
    try:
        store = IncidentStore.snapshot(path) if module.check_mode else IncidentStore(path)
        try:
            result = run(module, store)
        finally:
            store.close()
    except LockHeld as exc:
        module.fail_json(
            msg=str(exc),
            lock={
                "service": exc.service,
                "incident_id": exc.incident_id,
                "since": exc.since,
                "pid": exc.pid,
                "host": exc.host,
                "stale": exc.stale,
            },
            store=path,
        )
    except IncidentError as exc:
        module.fail_json(msg=str(exc), store=path)
    module.finish(result)


if __name__ == "__main__":
    main()
