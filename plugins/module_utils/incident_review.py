# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The post-incident review's data, built from the incident store (plain Python on the controller).

``build_report(record, timeline, ...)`` turns an incident and its timeline into the review: summary,
impact, error-budget cost, milestones against per-severity targets, the timeline, the actions (the timeline
callback's task entries) with durations, what went well and what went wrong (derived from the timeline:
failed tasks, retries, escalations, data-loss risks, missed targets, undelivered status updates), open
questions for the root cause and follow-up items. ``build_status_page`` lists every incident, unresolved
ones first. Rendering is ``incident_report``'s; the chart is ``incident_chart``'s.

The data depends only on the store's content, never on the clock: an unresolved incident is reported "as
of" its latest timeline entry, so rendering twice gives the same bytes.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import (
    error_budget,
    humanize,
    seconds_between,
)
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
    IncidentError,
    IncidentStore,
    UnknownIncident,
)
from ansible_collections.mttr.recovery.plugins.module_utils.redact import mask

DEFAULT_SLO = 0.999


DEFAULT_WINDOW_DAYS = 30


FORMATS = ("md", "html", "json")


CHART_EXTRA = "matplotlib (the report extra of the mttr package, or pip install 'matplotlib>=3.8')"

# Seconds from opening to each milestone that count as on target, per severity.


DEFAULT_TARGETS = {
    "SEV1": {"acknowledge": 300, "mitigate": 3600, "resolve": 14400},
    "SEV2": {"acknowledge": 900, "mitigate": 14400, "resolve": 86400},
    "SEV3": {"acknowledge": 3600, "mitigate": 86400, "resolve": 259200},
    "SEV4": {"acknowledge": 14400, "mitigate": 259200, "resolve": 604800},
}


STATUS_ORDER = ("acknowledged", "mitigated", "resolved")


MILESTONES = (
    ("acknowledge", "acknowledged_at", "Acknowledged", "acknowledgement"),
    ("mitigate", "mitigated_at", "Mitigated", "mitigation"),
    ("resolve", "resolved_at", "Resolved", "resolution"),
)
# The EARS status update that follows each status: Explain, Acknowledge, Resolve, Study.


PHASE_OF_STATUS = {
    "open": "explain",
    "acknowledged": "acknowledge",
    "escalated": "acknowledge",
    "mitigated": "resolve",
    "resolved": "study",
}


PHASES = ("explain", "acknowledge", "resolve", "study")
# How the communicate role records a status update on the timeline (a note entry).


COMMUNICATION_RE = re.compile(
    r"^status update \[(?P<phase>\w+)\] to webhook (?P<webhook>\S+): (?P<outcome>posted|failed)(?:: (?P<detail>.*))?$",
    re.S,
)


FAILED_RESULTS = ("failed", "unreachable")


MAX_DERIVED = 8  # per kind of derived finding, so a storm of failures does not drown the review


def short_time(text):
    """``2026-11-23T09:00:12.345678+00:00`` -> ``2026-11-23 09:00:12 UTC``."""
    return f"{text[:10]} {text[11:19]} UTC" if text else "-"


def offset(seconds):
    return "+" + humanize(max(0.0, seconds))


def load(store_path, incident_id):
    """The incident and its timeline from the store at ``store_path``, read from a copy: nothing is written."""
    if not os.path.exists(store_path):
        raise IncidentError(f"no incident store at {store_path}: set the store path (or MTTR_HOME)")
    store = IncidentStore.snapshot(store_path)
    try:
        return store.get(incident_id), store.timeline(incident_id)
    except UnknownIncident:
        raise UnknownIncident(f"no incident {incident_id} in {store_path}: check the id") from None
    finally:
        store.close()


def load_all(store_path):
    """Every incident with its timeline, as ``[(record, timeline)]``; an absent store has none."""
    if not os.path.exists(store_path):
        return []
    store = IncidentStore.snapshot(store_path)
    try:
        return [(record, store.timeline(record["id"])) for record in store.list()]
    finally:
        store.close()


def communications(timeline):
    """The status updates the communicate role recorded, oldest first."""
    found = []
    for entry in timeline:
        if entry["kind"] != "note":
            continue
        match = COMMUNICATION_RE.match(entry["message"] or "")
        if match:
            found.append(
                {
                    "time": entry["time"],
                    "phase": match.group("phase"),
                    "webhook": match.group("webhook"),
                    "outcome": match.group("outcome"),
                    "detail": mask(match.group("detail") or ""),
                }
            )
    return found


def latest_update(timeline):
    """The latest human-facing entry (status change, note or update; not task events or status-update receipts)."""
    for entry in reversed(timeline):
        if entry["kind"] not in ("status", "note", "update"):
            continue
        if entry["kind"] == "note" and COMMUNICATION_RE.match(entry["message"] or ""):
            continue
        return {"time": entry["time"], "kind": entry["kind"], "message": mask(entry["message"])}
    return None


def recorded_impact(timeline, impact=None):
    """Impact facts: the latest ``impact`` timeline entry's JSON result, overridden by ``impact``.

    Either may give ``probes_down``, ``probes_total``, ``users_affected``, ``data_loss``, or be a
    ``health_check`` result (``counts`` and ``total``).
    """
    facts = {}
    for entry in timeline:
        if entry["kind"] == "impact" and entry.get("result"):
            try:
                value = json.loads(entry["result"])
            except ValueError:
                continue
            if isinstance(value, dict):
                facts.update(_impact_fields(value))
    facts.update(_impact_fields(impact or {}))
    if facts.get("probes_total"):
        facts["share_down"] = round(facts.get("probes_down", 0) / facts["probes_total"], 4)
    return facts


def _impact_fields(value):
    fields = {}
    if isinstance(value.get("counts"), dict):
        fields["probes_down"] = int(value["counts"].get("down", 0))
        fields["probes_total"] = int(value.get("total") or sum(value["counts"].values()))
    for key in ("probes_down", "probes_total", "users_affected"):
        if value.get(key) is not None:
            fields[key] = int(value[key])
    if value.get("data_loss") is not None:
        fields["data_loss"] = bool(value["data_loss"])
    return fields


def _targets_for(severity, targets):
    merged = dict(DEFAULT_TARGETS.get(severity, {}))
    merged.update((targets or {}).get(severity, {}))
    return merged


def _actions(timeline, opened_at):
    actions = []
    for entry in timeline:
        if entry["kind"] != "task":
            continue
        end = seconds_between(opened_at, entry["time"])
        duration = float(entry["duration"] or 0.0)
        actions.append(
            {
                "time": entry["time"],
                "start_s": round(end - duration, 3),
                "end_s": round(end, 3),
                "offset": offset(end - duration),
                "host": entry.get("host") or "",
                "action": entry.get("action") or "(unnamed task)",
                "result": entry.get("result") or "",
                "duration_s": duration,
                "duration": humanize(duration),
                "message": mask(entry.get("message")),
            }
        )
    return actions


def _attempts(actions):
    """Per (host, action): how many times it failed, and whether its last attempt succeeded."""
    groups = {}
    for action in actions:
        if action["result"] == "skipped":
            continue
        key = (action["host"], action["action"])
        group = groups.setdefault(key, {"host": action["host"], "action": action["action"], "failures": []})
        if action["result"] in (*FAILED_RESULTS, "ignored"):
            group["failures"].append(action)
        group["last"] = action
    return list(groups.values())


def build_report(record, timeline, slo=DEFAULT_SLO, window_days=DEFAULT_WINDOW_DAYS, targets=None, impact=None):
    """The post-incident review's data for ``record`` (a store record) and its ``timeline``."""
    opened = record["opened_at"]
    as_of = record["resolved_at"] or max([opened] + [entry["time"] for entry in timeline])
    elapsed = seconds_between(opened, as_of)
    severity = record["severity"]
    goals = _targets_for(severity, targets)

    milestones = []
    for key, field, label, noun in MILESTONES:
        reached = record.get(field)
        seconds = seconds_between(opened, reached) if reached else None
        target = goals.get(key)
        met = None if seconds is None or target is None else seconds <= target
        overdue = seconds is None and target is not None and elapsed > target
        milestones.append(
            {
                "key": key,
                "label": label,
                "noun": noun,
                "at": reached,
                "seconds": seconds,
                "elapsed": humanize(seconds) if seconds is not None else f"not yet ({humanize(elapsed)} so far)",
                "target_s": target,
                "target": humanize(target) if target is not None else "-",
                "met": met,
                "overdue": overdue,
                "verdict": "met" if met is True else "missed" if met is False or overdue else "",
            }
        )

    # Impact lasts from the opening until the service is restored (mitigated), else resolved, else still on.
    restored = record["mitigated_at"] or record["resolved_at"]
    downtime = seconds_between(opened, restored or as_of)
    facts = recorded_impact(timeline, impact)
    budget = error_budget(downtime, slo, window_days)
    budget.update(
        {
            "budget": humanize(budget["budget_s"]),
            "consumed": humanize(budget["consumed_s"]),
            "remaining": humanize(budget["remaining_s"]),
            "consumed_percent": round(100 * (budget["consumed_ratio"] or 0), 2),
            "slo_percent": f"{slo * 100:g}",
        }
    )

    # Skipping a status sets the skipped timestamps too, so a missing one means none later is set either.
    phases = []
    bounds = [("open", opened)] + [(status, record.get(status + "_at")) for status in STATUS_ORDER]
    for (name, start), (next_name, end) in zip(bounds, bounds[1:]):
        if start is None:
            break
        phases.append(
            {
                "name": f"{name} -> {next_name}",
                "start_s": seconds_between(opened, start),
                "end_s": seconds_between(opened, end or as_of),
                "open_ended": end is None,
            }
        )

    entries = [
        {
            "time": entry["time"],
            "offset": offset(seconds_between(opened, entry["time"])),
            "kind": entry["kind"],
            "host": entry.get("host") or "",
            "action": entry.get("action") or "",
            "result": entry.get("result") or "",
            "duration": "" if entry.get("duration") is None else humanize(entry["duration"]),
            "message": mask(entry.get("message")),
        }
        for entry in timeline
    ]
    actions = _actions(timeline, opened)
    counts = {}
    for action in actions:
        counts[action["result"]] = counts.get(action["result"], 0) + 1
    escalations = [entry for entry in timeline if entry["kind"] == "status" and entry.get("action") == "escalated"]
    sent = communications(timeline)
    playbooks = [entry for entry in timeline if entry["kind"] == "playbook" and entry.get("result")]

    report = {
        "incident": {
            key: record[key] for key in ("id", "services", "severity", "status", "summary", "opened_at", "resolved_at")
        },
        "as_of": as_of,
        "elapsed_s": elapsed,
        "phase": PHASE_OF_STATUS[record["status"]],
        "milestones": milestones,
        "impact": dict(
            facts,
            services=record["services"],
            severity=severity,
            started_at=opened,
            restored_at=restored,
            ongoing=restored is None,
            downtime_s=round(downtime, 3),
            downtime=humanize(downtime),
        ),
        "error_budget": budget,
        "phases": phases,
        "timeline": entries,
        "actions": actions,
        "action_counts": counts,
        "hosts": sorted({action["host"] for action in actions if action["host"]}),
        "slowest": sorted(actions, key=lambda action: -action["duration_s"])[:5],
        "escalations": [{"time": entry["time"], "message": mask(entry["message"])} for entry in escalations],
        "risks": [
            {"time": entry["time"], "message": mask(entry["message"])} for entry in timeline if entry["kind"] == "risk"
        ],
        "communications": sent,
        "latest_update": latest_update(timeline),
    }
    report["went_well"], report["went_wrong"] = _findings(report, _attempts(actions), playbooks)
    report["questions"], report["follow_ups"] = _questions(report, _attempts(actions))
    report["summary"] = _summary(report)
    return report


def _findings(report, attempts, playbooks):
    well, wrong = [], []
    severity = report["incident"]["severity"]
    for milestone in report["milestones"]:
        if milestone["met"] is True:
            well.append(
                f"{milestone['label']} in {milestone['elapsed']}, "
                f"within the {severity} target of {milestone['target']}."
            )
        elif milestone["met"] is False:
            wrong.append(
                f"{milestone['label']} in {milestone['elapsed']}, over the {severity} target of {milestone['target']}."
            )
        elif milestone["overdue"]:
            wrong.append(
                f"Not {milestone['label'].lower()} after {humanize(report['elapsed_s'])}, over the {severity} "
                f"target of {milestone['target']}."
            )
    for escalation in report["escalations"]:
        wrong.append(f"Escalated at {short_time(escalation['time'])} ({escalation['message']}).")
    for risk in report["risks"]:
        wrong.append(f"Data-loss risk at {short_time(risk['time'])}: {risk['message']}.")

    actions = report["actions"]
    failed = [group for group in attempts if group["failures"] and group["last"]["result"] in FAILED_RESULTS]
    ignored = [group for group in attempts if group["failures"] and group["last"]["result"] == "ignored"]
    retried = [
        group for group in attempts if group["failures"] and group["last"]["result"] not in (*FAILED_RESULTS, "ignored")
    ]
    ran = [action for action in actions if action["result"] != "skipped"]
    if ran and not failed and not ignored and not retried:
        well.append(f"All {len(ran)} actions succeeded at the first attempt.")
    elif ran:
        good = sum(1 for action in ran if action["result"] in ("ok", "changed"))
        well.append(f"{good} of {len(ran)} action runs succeeded.")
    for group in failed[:MAX_DERIVED]:
        wrong.append(f"'{group['action']}' failed on {group['host']}: {group['last']['message'] or 'no message'}.")
    for group in ignored[:MAX_DERIVED]:
        wrong.append(f"'{group['action']}' failed on {group['host']} and the failure was ignored.")
    for group in retried[:MAX_DERIVED]:
        count = len(group["failures"])
        well.append(f"'{group['action']}' on {group['host']} recovered after {count} failed attempt(s).")
        wrong.append(f"'{group['action']}' on {group['host']} needed {count + 1} attempts ({count} failed).")
    for entry in playbooks:
        if entry["result"] == "failed":
            wrong.append(f"Playbook run: {mask(entry['message'])}.")
        elif entry["result"] == "ok":
            well.append(f"Playbook run: {mask(entry['message'])}.")
    posted = [sent for sent in report["communications"] if sent["outcome"] == "posted"]
    if posted:
        phases = ", ".join(sorted({sent["phase"] for sent in posted}, key=PHASES.index))
        well.append(f"{len(posted)} status update(s) delivered ({phases}).")
    for sent in report["communications"]:
        if sent["outcome"] == "failed":
            wrong.append(f"The {sent['phase']} status update to webhook {sent['webhook']} failed: {sent['detail']}.")
    budget = report["error_budget"]
    if budget["exhausted"]:
        wrong.append(
            f"The error budget is exhausted: {budget['consumed']} of downtime against a budget of "
            f"{budget['budget']} ({budget['slo_percent']} % over {budget['window_days']} days)."
        )
    return well, wrong


def _questions(report, attempts):
    incident = report["incident"]
    services = ", ".join(incident["services"])
    questions = [
        f"What triggered the incident, and when did the underlying fault start (it was detected at "
        f"{short_time(incident['opened_at'])})?",
        f"Why did {services} fail, and which safeguard should have stopped it?",
        "Could the impact have been detected earlier, or contained to fewer users?",
    ]
    follow_ups = ["Write down the root cause and the contributing factors: this draft states none."]
    for group in attempts:
        if not group["failures"]:
            continue
        if group["last"]["result"] in (*FAILED_RESULTS, "ignored"):
            questions.append(f"Why did '{group['action']}' fail on {group['host']}?")
            follow_ups.append(f"Fix or harden '{group['action']}' (failed on {group['host']}).")
        else:
            questions.append(f"Why did '{group['action']}' need retries on {group['host']}?")
            follow_ups.append(f"Make '{group['action']}' succeed at the first attempt on {group['host']}.")
        if len(follow_ups) > MAX_DERIVED:
            break
    for milestone in report["milestones"]:
        if milestone["met"] is False or milestone["overdue"]:
            questions.append(f"What slowed the {milestone['noun']}?")
            follow_ups.append(
                f"Review what slowed the {milestone['noun']} against the {incident['severity']} target "
                f"({milestone['target']})."
            )
    if report["escalations"]:
        questions.append("What made the escalation necessary, and did it reach the right people quickly?")
    if report["risks"]:
        questions.append("Were writes lost? Compare what clients were told was committed with what the data holds.")
        follow_ups.append("Reconcile the writes at risk (see the data-loss risks on the timeline) with their owners.")
    for sent in report["communications"]:
        if sent["outcome"] == "failed":
            follow_ups.append(f"Check webhook {sent['webhook']}: a status update did not get through.")
    budget = report["error_budget"]
    if budget["exhausted"]:
        follow_ups.append("Apply the error-budget policy: the budget is exhausted.")
    elif budget["consumed_percent"] >= 50:
        follow_ups.append(f"Review the error-budget policy: this incident used {budget['consumed_percent']} % of it.")
    if incident["status"] != "resolved":
        follow_ups.append("Resolve the incident, then regenerate this review.")
    return questions, follow_ups


def _summary(report):
    incident = report["incident"]
    parts = [
        f"{incident['id']} ({incident['severity']}) affected {', '.join(incident['services'])}"
        + (f": {incident['summary']}" if incident["summary"] else "")
        + "."
    ]
    reached = [f"{m['label'].lower()} after {m['elapsed']}" for m in report["milestones"] if m["seconds"] is not None]
    sentence = f"Opened at {short_time(incident['opened_at'])}"
    parts.append(sentence + (", " + ", ".join(reached) if reached else "") + ".")
    if incident["status"] != "resolved":
        parts.append(f"It is {incident['status']} as of {short_time(report['as_of'])}.")
    impact = report["impact"]
    parts.append(
        f"Impact lasted {impact['downtime']}"
        + (" and is ongoing" if impact["ongoing"] else "")
        + f", {report['error_budget']['consumed_percent']} % of the {report['error_budget']['window_days']}-day "
        f"error budget at {report['error_budget']['slo_percent']} %."
    )
    ran = [action for action in report["actions"] if action["result"] != "skipped"]
    if ran:
        failed = sum(1 for action in ran if action["result"] in FAILED_RESULTS)
        parts.append(f"{len(ran)} action runs on {len(report['hosts'])} host(s), {failed} failed.")
    return " ".join(parts)


def build_status_page(incidents, limit=50):
    """The status page's data from ``[(record, timeline)]``: unresolved incidents first (most severe, then
    newest), then the ``limit`` latest resolved ones."""
    items = []
    for record, timeline in incidents:
        latest = latest_update(timeline)
        items.append(
            {
                "id": record["id"],
                "summary": record["summary"],
                "severity": record["severity"],
                "status": record["status"],
                "services": record["services"],
                "opened_at": record["opened_at"],
                "resolved_at": record["resolved_at"],
                "duration": humanize(record["durations"].get("time_to_resolve_s")),
                "latest": latest,
            }
        )
    newest_first = sorted(items, key=lambda item: item["resolved_at"] or item["opened_at"], reverse=True)
    active = sorted((item for item in newest_first if item["status"] != "resolved"), key=lambda item: item["severity"])
    resolved = [item for item in newest_first if item["status"] == "resolved"][:limit]
    times = [item["latest"]["time"] for item in active + resolved if item["latest"]]
    return {
        "active": active,
        "resolved": resolved,
        "worst": active[0]["severity"] if active else None,
        "affected": sorted({service for item in active for service in item["services"]}),
        "updated": max(times) if times else None,
    }
