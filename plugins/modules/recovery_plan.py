#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: recovery_plan
short_description: Triage an incident into an ordered recovery plan, and record each step's progress
version_added: 0.1.0
author:
  - mttr.recovery developers (@mttr-recovery)
description:
  - With O(action=plan), opens the incident (taking the per-service recovery lock) or attaches to it,
    marks it acknowledged, probes the affected service and everything it depends on in one concurrent
    round, tells each one's failure mode from the probes (primary-down, data-loss, instance-lost,
    app-crash, bad-release, or failing only because a dependency fails), picks the catalog's strategy
    for it, and orders the steps dependencies first, lower tier first. The plan is recorded on the
    incident's timeline.
  - Run again for the same incident, it reuses the recorded plan and reports which steps completed, so
    a resumed recovery never repeats a completed promotion or restore. O(from_start) plans afresh.
  - With O(action=validate), probes every involved service until the triage rule finds them all healthy
    O(min_consecutive) rounds in a row or O(deadline) passes, and records the verdict as the C(validate)
    step. After a failover, the service's database nodes that are down (the fenced old primary) do not
    fail it while a primary answers; they are listed in RV(notes). A failed step fails the validation.
  - With O(action=record), appends a step's progress (and its undo point) to the timeline.
  - The rules are the collection's recovery engine, shared with C(mttr recover) and C(mttr plan).
options:
  action:
    description: Plan (triage), or record a step's progress.
    type: str
    choices: [plan, validate, record]
    default: plan
  deadline:
    description: With O(action=validate), seconds to wait for the services to be healthy.
    type: float
    default: 30
  interval:
    description: With O(action=validate), seconds between rounds of probes.
    type: float
    default: 0.2
  min_consecutive:
    description: With O(action=validate), healthy rounds in a row needed.
    type: int
    default: 2
  resolve:
    description:
      - With O(action=validate), resolve the incident in the same call when the services validate (releasing
        its recovery locks), so the time to resolve is the validation's.
    type: bool
    default: false
  probes:
    description:
      - With O(action=validate), more probes that must pass (M(mttr.recovery.health_check)'s format), such as a
        performance threshold or a business check; they count for O(service) unless labelled otherwise.
    type: list
    elements: dict
    default: []
  service:
    description: The affected service, as named in the catalog. Required with O(action=plan).
    type: str
  catalog:
    description: The service catalog (the C(mttr_catalog) variable the service_catalog inventory sets).
    type: dict
  hosts:
    description:
      - Per host of the involved services, its C(services), C(probes) and C(integrity_checks).
      - Probes and checks without C(labels.host) / C(labels.service) are labelled with the host and its first service.
    type: dict
    default: {}
  failure_mode:
    description: The failure mode of O(service); omitted, the probes tell it.
    type: str
  strategy:
    description: The strategy for O(service), over the catalog's.
    type: str
  incident_id:
    description:
      - The incident to attach to. Omitted with O(action=plan), a new incident is opened for the affected services.
      - Required with O(action=record) and O(action=validate).
    type: str
  summary:
    description: The summary of an incident this opens.
    type: str
  detected_at:
    description:
      - When the fault was detected, in ISO 8601, such as an alert's C(startsAt) or a watcher's first failed
        probe. An incident this opens is dated then, so its durations count from the fault.
    type: str
  from_start:
    description: Plan afresh from the probes, ignoring a plan and step progress already recorded.
    type: bool
    default: false
  store:
    description: The incident store; defaults to C(incidents.sqlite) in the mttr home.
    type: path
  step:
    description: With O(action=record), the step's id (C(service:strategy)), or a phase such as C(validate).
    type: str
  result:
    description: With O(action=record), the step's progress.
    type: str
    choices: [started, completed, failed, undone, not undone, skipped, cancelled]
  note:
    description: With O(action=record), one line for the timeline.
    type: str
    default: ""
  undo_point:
    description: With O(action=record), what a failed validation returns this step to (kept on the timeline).
    type: dict
attributes:
  check_mode:
    description: Can run in check mode and say what it would change without changing it.
    support: full
    details: Runs on a throwaway copy of the incident store, so the plan is exactly the one a real run makes.
  diff_mode:
    description: Would return a diff of what it changes.
    support: none
notes:
  - Runs on the controller (delegate it to localhost); the probes reach the services from there.
"""

EXAMPLES = r"""
- name: Triage the orders service
  mttr.recovery.recovery_plan:
    service: orders
    catalog: "{{ mttr_catalog }}"
    hosts: "{{ _hosts_with_probes }}"
  delegate_to: localhost
  run_once: true
  register: triage

- name: Record that a step completed, with its undo point
  mttr.recovery.recovery_plan:
    action: record
    incident_id: "{{ triage.incident.id }}"
    step: orders:rollback
    result: completed
    note: rolled back to 1.0.0
    undo_point: {previous: 1.1.0}
  delegate_to: localhost
"""

RETURN = r"""
incident:
  description: The incident after the task.
  returned: always
  type: dict
  sample: {"id": "INC-20261127-001", "status": "acknowledged", "severity": "SEV1", "services": ["orders-db"]}
plan:
  description: The ordered plan, each step with its status on the timeline.
  returned: with action=plan and action=validate
  type: dict
  contains:
    service:
      description: The affected service asked about.
      type: str
    services:
      description: It and everything it depends on, in recovery order.
      type: list
    affected:
      description: The services that get a step.
      type: list
    failure_mode:
      description: The affected service's failure mode (or its first failing dependency's).
      type: str
    severity:
      description: The severity from the probes' impact and the services' tier.
      type: str
    states:
      description: Per failing service, its failure mode, whether it only fails with a dependency, and the evidence.
      type: dict
    steps:
      description:
        - The steps, each with id, service, failure_mode, strategy, role, params, hosts and undo,
        - and from the timeline its status, whether to run it, and its undo_point.
      type: list
  sample:
    service: orders
    steps: [{"id": "orders-db:failover", "strategy": "failover", "status": "pending", "run": true}]
passed:
  description: Whether the services validated.
  returned: with action=validate
  type: bool
failures:
  description: Why they did not, one line per service or failed step.
  returned: with action=validate
  type: list
  elements: str
notes:
  description: What validated with an allowance (a failed-over old primary still down).
  returned: with action=validate
  type: list
  elements: str
rounds:
  description: Rounds of probes the validation took.
  returned: with action=validate
  type: int
resumed:
  description: Whether the plan was the one recorded by an earlier run of this incident.
  returned: with action=plan
  type: bool
probes:
  description: The probe results triage used (none when a recorded plan was reused), or the last round's.
  returned: with action=plan and action=validate
  type: list
  elements: dict
msg:
  description: What triage decided, or what was recorded.
  returned: always
  type: str
"""

import time

from ansible_collections.mttr.recovery.plugins.module_utils.incident_ops import ensure, find
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
    IncidentError,
    IncidentStore,
    LockHeld,
    default_store_path,
)
from ansible_collections.mttr.recovery.plugins.module_utils.module import MttrModule
from ansible_collections.mttr.recovery.plugins.module_utils.probes import ProbeSpecError, run_probes
from ansible_collections.mttr.recovery.plugins.module_utils.processes import controller_pid
from ansible_collections.mttr.recovery.plugins.module_utils.recovery import (
    RecoveryError,
    assess,
    members_of,
    open_and_plan,
    plan_line,
    probe_specs,
    record_step,
    recorded_plan,
    since_last_plan,
    verdict,
    with_progress,
)

# One quick round: a refused connection answers at once; a machine that is gone costs the timeout.
TRIAGE_PROBE_DEFAULTS = {"timeout": 2, "retries": 1, "backoff": 0.1}
VALIDATE_PROBE_DEFAULTS = {"timeout": 3, "retries": 0}


def triage(module, store):
    params = module.params
    incident = None
    if params["incident_id"]:
        incident = find(store, params["incident_id"])
        if incident is not None and params["service"] not in incident["services"]:
            raise RecoveryError(
                f"incident {incident['id']} is about {', '.join(incident['services'])}, not {params['service']}: "
                "open a new one for it (leave the incident out)"
            )
    recorded = None
    if incident is not None and not params["from_start"]:
        recorded = recorded_plan(store.timeline(incident["id"]))
    results = []
    if recorded is None:
        probes, checks = probe_specs(params["hosts"], TRIAGE_PROBE_DEFAULTS)
        results = run_probes(probes + checks, run_command=module.run)
        plan = assess(
            params["catalog"],
            params["service"],
            members_of(params["hosts"]),
            results[: len(probes)],
            results[len(probes) :],
            failure_mode=params["failure_mode"],
            strategy=params["strategy"],
        )
    else:
        plan = recorded
    incident_id, changed = open_and_plan(
        store,
        plan,
        params["service"],
        recorded=recorded is not None,
        incident_id=params["incident_id"],
        existing=incident,
        summary=params["summary"],
        pid=controller_pid(),
        detected_at=params["detected_at"] or None,
        where=params["store"] or default_store_path(),
    )
    timeline = since_last_plan(store.timeline(incident_id))
    plan = with_progress(plan, timeline)
    done = [step["id"] for step in plan["steps"] if not step["run"]]
    msg = plan_line(plan) + (f" (resumed; completed already: {', '.join(done)})" if done else "")
    return {
        "changed": changed,
        "incident": store.get(incident_id),
        "plan": plan,
        "resumed": recorded is not None,
        "probes": results,
        "msg": msg,
    }


def validate(module, store):
    """Probe the involved services until they validate (twice in a row) or the deadline passes; record it."""
    params = module.params
    incident = store.get(params["incident_id"])
    timeline = store.timeline(incident["id"])
    plan = recorded_plan(timeline)
    if plan is None:
        raise RecoveryError(f"incident {incident['id']} has no recovery plan to validate: run the triage first")
    plan = with_progress(plan, since_last_plan(timeline))
    hosts = {
        host: facts
        for host, facts in (params["hosts"] or {}).items()
        if set(facts.get("services") or []) & set(plan["services"])
    }
    extra = [
        dict(probe, labels=dict({"service": plan["service"]}, **(probe.get("labels") or {})))
        for probe in params["probes"]
    ]
    probes, checks = probe_specs(hosts, VALIDATE_PROBE_DEFAULTS, extra)
    deadline = time.monotonic() + params["deadline"]
    streak, rounds = 0, 0
    while True:
        rounds += 1
        results = run_probes(probes + checks, run_command=module.run)
        found = verdict(plan, members_of(hosts), results[: len(probes)], results[len(probes) :])
        streak = streak + 1 if found["passed"] else 0
        if streak >= params["min_consecutive"] or time.monotonic() + params["interval"] > deadline:
            break
        time.sleep(params["interval"])
    failed_steps = [step["id"] for step in plan["steps"] if step["status"] == "failed"]
    passed = found["passed"] and not failed_steps
    if failed_steps:
        found["failures"].insert(0, f"step{'s' if len(failed_steps) > 1 else ''} {', '.join(failed_steps)} failed")
    message = (
        "validated: " + ", ".join(plan["services"]) + " healthy"
        if passed
        else "validation failed: " + "; ".join(found["failures"])
    )
    if found["notes"]:
        message += " (" + "; ".join(found["notes"]) + ")"
    store.append(incident["id"], "step", message, action="validate", result="completed" if passed else "failed")
    if passed and params["resolve"]:
        ensure(store, state="resolved", incident_id=incident["id"], note="recovered and validated", lock=False)
    return {
        "changed": True,
        "incident": store.get(incident["id"]),
        "plan": plan,
        "passed": passed,
        "failures": found["failures"],
        "notes": found["notes"],
        "rounds": rounds,
        "probes": results,
        "msg": message,
    }


def record(module, store):
    params = module.params
    incident_id = params["incident_id"]
    if not incident_id or not params["step"] or not params["result"]:
        raise RecoveryError("action=record needs incident_id, step and result")
    record_step(store, incident_id, params["step"], params["result"], params["note"], params["undo_point"])
    return {
        "changed": True,
        "incident": store.get(incident_id),
        "msg": f"{params['step']}: {params['result']}" + (f" ({params['note']})" if params["note"] else ""),
    }


ACTIONS = {"plan": triage, "validate": validate, "record": record}


def main():
    module = MttrModule(
        argument_spec={
            "action": {"type": "str", "choices": list(ACTIONS), "default": "plan"},
            "deadline": {"type": "float", "default": 30},
            "interval": {"type": "float", "default": 0.2},
            "min_consecutive": {"type": "int", "default": 2},
            "probes": {"type": "list", "elements": "dict", "default": []},
            "resolve": {"type": "bool", "default": False},
            "service": {"type": "str"},
            "catalog": {"type": "dict"},
            "hosts": {"type": "dict", "default": {}},
            "failure_mode": {"type": "str"},
            "strategy": {"type": "str"},
            "incident_id": {"type": "str"},
            "summary": {"type": "str"},
            "from_start": {"type": "bool", "default": False},
            "detected_at": {"type": "str"},
            "store": {"type": "path"},
            "step": {"type": "str"},
            "result": {
                "type": "str",
                "choices": ["started", "completed", "failed", "undone", "not undone", "skipped", "cancelled"],
            },
            "note": {"type": "str", "default": ""},
            "undo_point": {"type": "dict"},
        },
        required_if=[
            ("action", "plan", ["service", "catalog"]),
            ("action", "record", ["incident_id", "step", "result"]),
            ("action", "validate", ["incident_id"]),
        ],
        supports_check_mode=True,
    )
    path = module.params["store"] or default_store_path()
    try:
        store = IncidentStore.snapshot(path) if module.check_mode else IncidentStore(path)
        try:
            result = ACTIONS[module.params["action"]](module, store)
        finally:
            store.close()
    except LockHeld as exc:
        module.fail_json(msg=str(exc), holder=exc.incident_id, changed=False)
    except (IncidentError, RecoveryError, ProbeSpecError) as exc:
        module.fail_json(msg=str(exc), changed=False)
    result["store"] = path
    module.finish(result)


if __name__ == "__main__":
    main()
