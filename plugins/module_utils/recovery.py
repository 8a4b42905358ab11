# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery plan of one incident: triage's rules, and what resuming a recovery may skip.

Plain Python (no Ansible) for the ``recovery_plan`` module, ``mttr recover`` and ``mttr plan``.

**Triage.** Each service involved (the affected one and everything it depends on) is classified from its
probes and integrity checks, dependencies first:

- ``primary-down``: it has PostgreSQL nodes and none answers as a primary;
- ``data-loss``: an integrity check fails on a node whose own probes are healthy (a node that is down says
  nothing about the data);
- ``instance-lost``: every probe of one of its hosts timed out or found no route (the machine is gone);
- ``app-crash``: a probe found nothing listening (connection refused) where the service should answer;
- ``bad-release``: it answers, but unhealthy, while everything it depends on is healthy;
- a service that answers unhealthy while one of its dependencies fails is *dependent*: it gets no step of
  its own, the recovery of the dependency is expected to bring it back, and validation proves it.

A failure mode given by the caller wins over the probes for the affected service; a strategy given by the
caller wins over the catalog's. A failure mode the service has no strategy for is an error naming the
ones it has.

**Steps and resume.** The plan is recorded on the incident's timeline (a ``plan`` entry) and each step's
progress as ``step`` entries (``started``, ``completed``, ``failed``, ``undone``...). Running the recovery
again for the same incident reuses the recorded plan, and a step whose last entry is ``completed`` is
never run again (a second promotion, a second restore); one that ``started`` without completing runs again,
which every strategy role makes safe (a restore proven already in place, a rollback to the pinned release).
``from_start`` plans afresh from the probes.
"""

from __future__ import annotations

import copy
import json

from ansible_collections.mttr.recovery.plugins.module_utils.catalog import (
    CatalogError,
    check_services,
    dependencies,
    recovery_order,
    tier_of,
    transitive,
)
from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import classify_severity
from ansible_collections.mttr.recovery.plugins.module_utils.incident_ops import ensure
from ansible_collections.mttr.recovery.plugins.module_utils.probes import normalize

# strategy -> the role that carries it out
STRATEGY_ROLES = {
    "failover": "failover",
    "restore": "backup_restore",
    "rollback": "snapshot_rollback",
    "restart": "restart",
    "replace": "replace",
}
# What a failed validation does to a completed step of each strategy (see undo_of).
UNDO = {
    "rollback": "switch back to the release that was active before",
    "restore": "put the database back as it was before the restore (its safety copy)",
    "failover": None,  # a promotion is never reversed automatically: the old primary crashed
    "restart": None,  # the component was down before: nothing to return to
    "replace": None,  # the replaced instance was dead: traffic stays on the replacement
}
NOT_UNDONE = {
    "failover": "a promotion is not reversed automatically (the old primary failed): a person decides",
    "restart": "a restart is not undone (the component was down before it)",
    "replace": "a replacement is not undone (the instance it replaced was lost)",
}
FAILURE_MODES = ("primary-down", "data-loss", "instance-lost", "app-crash", "bad-release")
STEP_RESULTS = ("started", "completed", "failed", "undone", "not undone", "skipped", "cancelled")
UNREACHABLE_ERRORS = ("timed out", "no route to host", "network is unreachable", "host is unreachable")


class RecoveryError(ValueError):
    """The recovery cannot be planned as asked; the message says why and what to do."""


def strategy_name(value):
    """A catalog strategy is a name or ``{strategy: name, ...parameters}``."""
    return value if isinstance(value, str) else (value or {}).get("strategy")


def strategy_params(value):
    return {} if isinstance(value, str) else {k: v for k, v in (value or {}).items() if k != "strategy"}


def _service_results(service, members, results):
    """The probe results of one service: labelled with it, or unlabelled ones of its hosts."""
    found = []
    for result in results:
        labels = result.get("labels") or {}
        if labels.get("service") == service or (not labels.get("service") and labels.get("host") in members):
            found.append(result)
    return found


def _refused(result):
    return "connection refused" in (result.get("error") or "").lower()


def _unreachable(result):
    error = (result.get("error") or "").lower()
    return any(marker in error for marker in UNREACHABLE_ERRORS)


def _answered(result):
    return bool((result.get("details") or {}).get("status_code"))


def classify(service, members, results, integrity, failing_dependencies):
    """The failure of one service from its probes, or None when it is healthy.

    Returns ``{"failure_mode": mode or None, "dependent": bool, "evidence": [lines]}``; ``failure_mode`` None
    with ``dependent`` True means it fails only as its dependencies do.
    """
    own = _service_results(service, members, results)
    notes = []
    postgres = [r for r in own if r["kind"] == "postgres"]
    if any(r["status"] == "healthy" and (r.get("details") or {}).get("role", "primary") == "primary" for r in postgres):
        # a primary answers: a database node that is down only reduces redundancy (a fenced old primary, a
        # standby that stopped); recovering it is a rejoin, not this incident's recovery
        for result in [r for r in postgres if r["status"] != "healthy"]:
            notes.append(
                f"{host_of(result)} is down ({result.get('error')}): redundancy is reduced until it rejoins as a "
                "standby (mttr.recovery.failover with failover_rejoin=true)"
            )
            members = [host for host in members if host != host_of(result)]
            own = [r for r in own if r is not result]
        postgres = [r for r in own if r["kind"] == "postgres"]
    down = [r for r in own if r["status"] != "healthy"]
    healthy_hosts = {
        host
        for host in members
        if [r for r in own if (r.get("labels") or {}).get("host") == host]
        and all(r["status"] == "healthy" for r in own if (r.get("labels") or {}).get("host") == host)
    }
    broken_checks = [
        check
        for check in integrity
        if check["status"] != "healthy" and (check.get("labels") or {}).get("host") in healthy_hosts
    ]

    def line(result):
        return f"{result['name']}: {result['status']} ({result.get('error') or 'unhealthy'})"

    # every node may answer, as a standby: nothing takes writes either
    if postgres and not any(
        r["status"] == "healthy" and (r.get("details") or {}).get("role", "primary") == "primary" for r in postgres
    ):
        return {
            "failure_mode": "primary-down",
            "dependent": False,
            "evidence": ["no node answers as the primary"] + [line(r) for r in postgres],
        }
    if not down and not broken_checks:
        return (
            {"failure_mode": None, "dependent": False, "healthy": True, "evidence": [], "notes": notes}
            if notes
            else None
        )
    if broken_checks:
        return {
            "failure_mode": "data-loss",
            "dependent": False,
            "evidence": [line(check) for check in broken_checks],
        }
    by_host = {}
    for result in own:
        by_host.setdefault((result.get("labels") or {}).get("host"), []).append(result)
    lost = [host for host, found in by_host.items() if host and all(_unreachable(r) for r in found)]
    if lost:
        return {
            "failure_mode": "instance-lost",
            "dependent": False,
            "evidence": [f"{host} does not answer at all" for host in lost] + [line(r) for r in down],
        }
    refused = [r for r in down if _refused(r)]
    if refused:
        return {"failure_mode": "app-crash", "dependent": False, "evidence": [line(r) for r in refused]}
    if failing_dependencies:
        return {
            "failure_mode": None,
            "dependent": True,
            "evidence": [f"fails while it depends on failing {', '.join(failing_dependencies)}"]
            + [line(r) for r in down],
        }
    if any(_answered(r) for r in down):
        return {"failure_mode": "bad-release", "dependent": False, "evidence": [line(r) for r in down]}
    return {
        "failure_mode": None,
        "dependent": False,
        "evidence": [line(r) for r in down],
    }


def host_of(result):
    return (result.get("labels") or {}).get("host")


def step_hosts(strategy, members, own, params):
    """The hosts a strategy runs on: a failover on every database node, a restore on the live primary, the
    others on the hosts whose probes fail. ``params["hosts"]`` (from the catalog) wins."""
    if params.get("hosts"):
        return list(params["hosts"])
    postgres = [r for r in own if r["kind"] == "postgres"]
    if strategy == "failover":
        return [host for host in members if any(host_of(r) == host for r in postgres)]
    if strategy == "restore":
        primaries = [
            host_of(r)
            for r in postgres
            if r["status"] == "healthy" and (r.get("details") or {}).get("role", "primary") == "primary"
        ]
        return [host for host in members if host in primaries]
    failing = {host_of(r) for r in own if r["status"] != "healthy"}
    return [host for host in members if host in failing]


def verdict(plan, members, results, integrity):
    """Whether the involved services are healthy again: ``{"passed": bool, "failures": [...], "notes": [...]}``.

    The rule is triage's: every involved service classifies as healthy (a database node that is down while a
    primary answers, such as a fenced old primary, is a note: redundancy is reduced until it rejoins). After a
    completed replacement, the replaced hosts' probes that find nothing there (refused, unreachable) are notes
    too: the instance they describe is gone, and the service's other probes (through the load balancer) count.
    """
    failures, notes, states = [], [], {}
    replaced = {
        host
        for step in plan["steps"]
        if step["strategy"] == "replace" and step.get("status") == "completed"
        for host in step["hosts"]
    }
    for result in results:
        if host_of(result) in replaced and result["status"] != "healthy" and (_refused(result) or _unreachable(result)):
            notes.append(f"{host_of(result)} was replaced: {result['name']} no longer answers ({result.get('error')})")
    results = [
        r
        for r in results
        if not (host_of(r) in replaced and r["status"] != "healthy" and (_refused(r) or _unreachable(r)))
    ]
    for name in plan["services"]:
        failing_deps = [dep for dep in _deps(plan, name) if states.get(dep)]
        checks = [c for c in integrity if (c.get("labels") or {}).get("service") == name]
        state = classify(name, list(members.get(name) or []), results, checks, failing_deps)
        if state and state.get("healthy"):
            notes.extend(state["notes"])
            state = None
        states[name] = state
        if state:
            failures.append(f"{name}: {'; '.join(state['evidence'][:3])}")
    return {"passed": not failures, "failures": failures, "notes": notes}


def _deps(plan, name):
    return (plan.get("dependencies") or {}).get(name) or []


def involved(catalog, service):
    """The affected service and everything it depends on, dependencies first."""
    check_services(catalog, [service])
    names = [service, *sorted(transitive(catalog, service))]
    return recovery_order(names, catalog)


def assess(catalog, service, members, results, integrity, failure_mode=None, strategy=None):
    """Classify every involved service and choose the steps; return the plan (see build_plan)."""
    try:
        order = involved(catalog, service)
    except CatalogError as exc:
        raise RecoveryError(str(exc)) from None
    states, notes = {}, []
    for name in order:
        failing_deps = [dep for dep in dependencies(catalog, name) if states.get(dep)]
        checks = [c for c in integrity if (c.get("labels") or {}).get("service") == name]
        state = classify(name, members.get(name) or [], results, checks, failing_deps)
        states[name] = None if state and state.get("healthy") else state
        if state and state.get("healthy"):
            notes.extend(state["notes"])
    # A failure mode given for the service (an alert's label) is its own unless the service has no strategy
    # for it while a dependency fails that way: then the alert saw the dependency's failure through it.
    seen_below = any(
        state and state["failure_mode"] == failure_mode for name, state in states.items() if name != service
    )
    own_strategy = strategy or failure_mode in (catalog[service].get("strategies") or {})
    if failure_mode and (own_strategy or not seen_below):
        states[service] = {
            "failure_mode": failure_mode,
            "dependent": False,
            "evidence": [f"failure mode {failure_mode} given"] + ((states.get(service) or {}).get("evidence") or []),
        }
    steps = []
    for name in order:
        state = states[name]
        if not state or state["dependent"]:
            continue
        mode = state["failure_mode"]
        if mode is None:
            raise RecoveryError(
                f"cannot tell how {name} failed from its probes ({'; '.join(state['evidence'])}): "
                "give the failure mode (--failure-mode / mttr_failure_mode)"
            )
        strategies = catalog[name].get("strategies") or {}
        chosen = strategy if (strategy and name == service) else strategies.get(mode)
        if not strategy_name(chosen):
            known = ", ".join(f"{m}: {strategy_name(s)}" for m, s in strategies.items())
            raise RecoveryError(
                f"service {name} looks {mode} ({'; '.join(state['evidence'][:2])}) but the catalog has no strategy "
                f"for {mode} (it has: {known or 'none'}); "
                "add one, or give the strategy (--strategy / mttr_strategy)"
            )
        name_of = strategy_name(chosen)
        if name_of not in STRATEGY_ROLES:
            raise RecoveryError(
                f"service {name}: unknown strategy {name_of!r} for {mode}; choose one of {', '.join(STRATEGY_ROLES)}"
            )
        own = _service_results(name, members.get(name) or [], results)
        hosts = step_hosts(name_of, members.get(name) or [], own, strategy_params(chosen))
        if not hosts:
            raise RecoveryError(
                f"service {name}: {name_of} for {mode} has no host to run on (none of its hosts' probes fail"
                f"{'; or no node answers as primary' if name_of == 'restore' else ''}); name them in the catalog's "
                f"strategy ({mode}: {{strategy: {name_of}, hosts: [...]}})"
            )
        steps.append(
            {
                "id": f"{name}:{name_of}",
                "hosts": hosts,
                "service": name,
                "failure_mode": mode,
                "strategy": name_of,
                "role": STRATEGY_ROLES[name_of],
                "params": strategy_params(chosen),
                "undo": UNDO[name_of],
            }
        )
    affected = [step["service"] for step in steps]
    severity = classify_severity(
        {
            "share_down": sum(1 for r in results if r["status"] == "down") / max(1, len(results)),
            "share_degraded": sum(1 for r in results if r["status"] == "degraded") / max(1, len(results)),
            "data_loss": any(step["failure_mode"] == "data-loss" for step in steps),
        },
        tier=min([tier_of(catalog, name) for name in affected] or [tier_of(catalog, service)]),
    )
    return {
        "service": service,
        "services": order,
        "dependencies": {name: dependencies(catalog, name) for name in order},
        "affected": affected,
        "failure_mode": (states.get(service) or {}).get("failure_mode")
        or (steps[0]["failure_mode"] if steps else None),
        "severity": severity,
        "states": {name: state for name, state in states.items() if state},
        "notes": notes,
        "steps": steps,
    }


# ---------------------------------------------------------------------- the timeline


def recorded_plan(timeline):
    """The plan recorded by the last triage of this incident, or None."""
    plans = [entry for entry in timeline if entry["kind"] == "plan" and entry.get("result")]
    if not plans:
        return None
    try:
        return json.loads(plans[-1]["result"])
    except ValueError:
        return None


def since_last_plan(timeline):
    """The entries from the last ``plan`` entry on: a fresh plan (from_start) starts the progress afresh."""
    starts = [index for index, entry in enumerate(timeline) if entry["kind"] == "plan"]
    return timeline[starts[-1] :] if starts else timeline


def progress(timeline):
    """Each step's last recorded result: ``{step id: result}``."""
    found = {}
    for entry in timeline:
        if entry["kind"] == "step" and entry.get("action"):
            found[entry["action"]] = entry.get("result")
    return found


def undo_points(timeline):
    """The undo point recorded for each step (the last one), ``{step id: dict}``."""
    found = {}
    for entry in timeline:
        if entry["kind"] == "undo" and entry.get("action"):
            try:
                found[entry["action"]] = json.loads(entry.get("result") or "{}")
            except ValueError:
                continue
    return found


def with_progress(plan, timeline):
    """The plan with each step's ``status`` (pending, completed, ...) and ``undo_point`` from the timeline."""
    done = progress(timeline)
    points = undo_points(timeline)
    steps = []
    for step in plan["steps"]:
        status = done.get(step["id"]) or "pending"
        steps.append(dict(step, status=status, run=status != "completed", undo_point=points.get(step["id"])))
    return dict(plan, steps=steps)


def plan_line(plan):
    """One line for the timeline: what triage decided."""
    if not plan["steps"]:
        return f"triage: {plan['service']} and its dependencies need no recovery step"
    return "triage: " + "; then ".join(
        f"{step['service']} is {step['failure_mode']} -> {step['strategy']}" for step in plan["steps"]
    )


def plan_record(plan):
    """What the ``plan`` entry keeps: enough to resume without re-classifying."""
    keep = ("service", "services", "dependencies", "affected", "failure_mode", "severity", "steps")
    return json.dumps({key: plan[key] for key in keep}, sort_keys=True)


def check_step_result(result):
    if result not in STEP_RESULTS:
        raise RecoveryError(f"step result must be one of {', '.join(STEP_RESULTS)}, got {result!r}")
    return result


# ---------------------------------------------------------------------- the record (module and watcher alike)


def open_and_plan(
    store,
    plan,
    service,
    recorded=False,
    incident_id=None,
    existing=None,
    summary=None,
    pid=None,
    detected_at=None,
    where="the incident store",
):
    """Open the incident (taking the services' locks) or attach to ``existing``, acknowledge it, and record the
    plan unless it was ``recorded`` already; return ``(incident id, changed)``."""
    opened = ensure(
        store,
        state="open",
        incident_id=incident_id,
        services=sorted(set(plan["affected"]) | {service}) if existing is None else None,
        severity=plan["severity"] if not recorded else None,
        summary=summary or f"{service}: {plan_line(plan).removeprefix('triage: ')}",
        lock=True,
        pid=pid,
        where=where,
        opened_at=detected_at,
    )
    incident_id = opened["incident"]["id"]
    acknowledged = ensure(store, state="acknowledged", incident_id=incident_id, lock=False, where=where)
    changed = opened["changed"] or acknowledged["changed"]
    if not recorded:
        store.append(incident_id, "plan", plan_line(plan), action="triage", result=plan_record(plan))
        changed = True
    return incident_id, changed


def record_step(store, incident_id, step, result, note="", undo_point=None):
    """A step's progress on the timeline, and its undo point when given."""
    check_step_result(result)
    store.get(incident_id)
    store.append(incident_id, "step", note or "", action=step, result=result)
    if undo_point is not None:
        store.append(
            incident_id,
            "undo",
            f"undo point of {step}: " + ", ".join(f"{key}={value}" for key, value in sorted(undo_point.items())),
            action=step,
            result=undo_point,
        )


# ---------------------------------------------------------------------- the probes of catalogued hosts


def labelled(hosts, key):
    """Every host's ``key`` list (``{host: {services, probes, integrity_checks}}``), each item labelled with its
    host and service."""
    found = []
    for host, facts in sorted((hosts or {}).items()):
        services = (facts or {}).get("services") or []
        for item in (facts or {}).get(key) or []:
            item = copy.deepcopy(item)
            labels = dict(item.get("labels") or {})
            labels.setdefault("host", host)
            # the catalog decides: an extra var mttr_service (the affected one) reaches every host's labels
            if services and labels.get("service") not in services:
                labels["service"] = services[0]
            item["labels"] = labels
            found.append(item)
    return found


def members_of(hosts):
    """``{service: [hosts]}`` of the same host facts."""
    members = {}
    for host, facts in sorted((hosts or {}).items()):
        for service in (facts or {}).get("services") or []:
            members.setdefault(service, []).append(host)
    return members


def probe_specs(hosts, defaults, extra=()):
    """The hosts' probes (plus ``extra``) and integrity checks (postgres unless they say otherwise), labelled
    and normalized with ``defaults``: what triage, validation and the watcher run."""
    probes = normalize(labelled(hosts, "probes") + list(extra), defaults)
    checks = labelled(hosts, "integrity_checks")
    for check in checks:
        check.setdefault("kind", "postgres")
    return probes, normalize(checks, defaults) if checks else []
