# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Post-incident review drafts and the status page, built from the incident store.

Plain Python on the controller, shared by the ``incident_report`` module, the ``communicate`` and
``postmortem`` roles (through that module) and ``mttr report``:

- ``build_report(record, timeline, ...)`` turns an incident and its timeline into the review's data:
  summary, impact, error-budget cost, milestones against per-severity targets, the timeline, the actions
  (the timeline callback's task entries) with durations, what went well and what failed (derived from the
  timeline: failed tasks, retries, escalations, missed targets, undelivered status updates), open questions
  for the root cause and follow-up items.
- ``render_markdown`` / ``render_html`` render it with Jinja2; ``draw_chart`` draws the Gantt of the phases
  (open -> acknowledged -> mitigated -> resolved) and the actions with matplotlib, an optional extra: without
  it the HTML says what to install and nothing fails.
- ``build_status_page`` / ``render_status_page``: every incident in the store, unresolved ones first.
- ``write_files`` writes only what differs, atomically, and says what changed (or would, in check mode).

The output depends only on the store's content, never on the clock: an unresolved incident is reported "as
of" its latest timeline entry, so rendering twice gives the same bytes.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tempfile
import traceback

try:
    import jinja2
except ImportError:
    HAS_JINJA2 = False
    JINJA2_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_JINJA2 = True
    JINJA2_IMPORT_ERROR = None

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
RESULT_COLOURS = {
    "ok": "#2e7d32",
    "changed": "#f9a825",
    "failed": "#c62828",
    "unreachable": "#6a1b9a",
    "ignored": "#ef6c00",
    "skipped": "#9e9e9e",
}
PHASE_COLOUR = "#1565c0"
MAX_CHART_ROWS = 30
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


# ---------------------------------------------------------------------------------------------- the data


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


# ---------------------------------------------------------------------------------------------- the chart


def chart_unavailable():
    """Why the timeline chart cannot be drawn here, or None when it can."""
    try:
        import matplotlib  # noqa: F401  (only asking whether it is there)
    except ImportError:
        return f"The timeline chart needs {CHART_EXTRA}."
    return None


def draw_chart(report):
    """The Gantt of the phases and actions as PNG bytes; None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:
        return None

    rows = [(phase["name"], [(phase["start_s"], phase["end_s"], PHASE_COLOUR)]) for phase in report["phases"]]
    by_action = {}
    for action in report["actions"]:
        if action["result"] == "skipped":
            continue
        by_action.setdefault(action["action"], []).append(
            (action["start_s"], action["end_s"], RESULT_COLOURS.get(action["result"], "#455a64"))
        )
    hidden = max(0, len(by_action) - MAX_CHART_ROWS)
    rows += [(_clip(name), bars) for name, bars in list(by_action.items())[:MAX_CHART_ROWS]]

    span = max([report["elapsed_s"], 1.0] + [end for _name, bars in rows for _start, end, _colour in bars])
    scale, unit = (3600.0, "hours") if span > 3 * 3600 else (60.0, "minutes") if span > 180 else (1.0, "seconds")
    least = span * 0.004 / scale  # a one-second task in a four-hour incident stays visible

    figure = Figure(figsize=(10, 1.4 + 0.32 * max(len(rows), 1)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (_name, bars) in enumerate(rows):
        for start, end, colour in bars:
            axes.broken_barh(
                [(start / scale, max((end - start) / scale, least))], (index - 0.35, 0.7), facecolors=colour
            )
    for escalation in report["escalations"]:
        moment = seconds_between(report["incident"]["opened_at"], escalation["time"]) / scale
        axes.axvline(moment, color="#c62828", linestyle="--", linewidth=1)
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels([name for name, _bars in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, span / scale * 1.02)
    axes.set_xlabel(f"{unit} since the incident was opened")
    title = f"{report['incident']['id']} timeline"
    if hidden:
        title += f" ({hidden} more actions not drawn)"
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    legend = [Patch(color=PHASE_COLOUR, label="phase")] + [
        Patch(color=colour, label=result) for result, colour in RESULT_COLOURS.items() if result != "skipped"
    ]
    if report["escalations"]:
        legend.append(Line2D([0], [0], color="#c62828", linestyle="--", label="escalated"))
    axes.legend(handles=legend, fontsize=7, loc="best", ncol=4)
    figure.tight_layout()
    buffer = io.BytesIO()
    # No Software entry: the bytes depend on the data only, so an unchanged report stays unchanged.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _clip(name, width=48):
    return name if len(name) <= width else name[: width - 1] + "…"


def data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ---------------------------------------------------------------------------------------------- rendering

MARKDOWN = """\
# Post-incident review (draft): {{ r.incident.id }}

{{ r.summary }}

| | |
| --- | --- |
| Severity | {{ r.incident.severity }} |
| Status | {{ r.incident.status }} (as of {{ r.as_of | when }}) |
| Services | {{ r.incident.services | join(', ') }} |
| Opened | {{ r.incident.opened_at | when }} |
{% for m in r.milestones %}
| {{ m.label }} | {{ m.elapsed }}{{ (' (target %s, %s)' % (m.target, m.verdict)) if m.verdict else '' }} |
{% endfor %}

## Timeline chart

{% if chart_ref %}
![Timeline of {{ r.incident.id }}]({{ chart_ref }})
{% else %}
_{{ chart_note }}_
{% endif %}

## Impact

{% for line in impact %}
- {{ line }}
{% endfor %}

## SLO and error budget

{% for line in budget %}
- {{ line }}
{% endfor %}

## What went well

{% for item in r.went_well %}
- {{ item | md }}
{% else %}
- Nothing recorded.
{% endfor %}

## What went wrong

{% for item in r.went_wrong %}
- {{ item | md }}
{% else %}
- Nothing recorded.
{% endfor %}

## Actions

{% if r.actions %}
| Start | Host | Action | Result | Duration |
| --- | --- | --- | --- | --- |
{% for a in r.actions %}
| {{ [a.offset, a.host, a.action, a.result, a.duration] | map('cell') | join(' | ') }} |
{% endfor %}
{% else %}
No actions were recorded (enable the mttr.recovery.timeline callback to record them).
{% endif %}

## Timeline

| Time | | Kind | Host | What | Result | Message |
| --- | --- | --- | --- | --- | --- | --- |
{% for e in r.timeline %}
| {{ [e.time | when, e.offset, e.kind, e.host, e.action, e.result, e.message] | map('cell') | join(' | ') }} |
{% endfor %}

## Open questions for the root cause

{% for item in r.questions %}
- {{ item | md }}
{% endfor %}

## Follow-up items

{% for item in r.follow_ups %}
- [ ] {{ item | md }}
{% endfor %}
"""

HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Post-incident review: {{ r.incident.id }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #212121; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; font-size: .9em; }
.failed, .unreachable, .missed { color: #c62828; font-weight: bold; }
.met { color: #2e7d32; }
.note { color: #616161; font-style: italic; }
img.chart { max-width: 100%; }
</style>
</head>
<body>
<h1>Post-incident review (draft): {{ r.incident.id }}</h1>
<p>{{ r.summary }}</p>
<table>
<tr><th>Severity</th><td>{{ r.incident.severity }}</td></tr>
<tr><th>Status</th><td>{{ r.incident.status }} (as of {{ r.as_of | when }})</td></tr>
<tr><th>Services</th><td>{{ r.incident.services | join(', ') }}</td></tr>
<tr><th>Opened</th><td>{{ r.incident.opened_at | when }}</td></tr>
{% for m in r.milestones %}
<tr><th>{{ m.label }}</th><td>{{ m.elapsed }}
{%- if m.verdict %} (target {{ m.target }}, <span class="{{ m.verdict }}">{{ m.verdict }}</span>){% endif -%}
</td></tr>
{% endfor %}
</table>

<h2>Timeline chart</h2>
{% if chart_uri %}
<img class="chart" alt="Gantt chart of the phases and actions of {{ r.incident.id }}" src="{{ chart_uri }}">
{% else %}
<p class="note">{{ chart_note }}</p>
{% endif %}

<h2>Impact</h2>
<ul>
{% for line in impact %}
<li>{{ line }}</li>
{% endfor %}
</ul>

<h2>SLO and error budget</h2>
<ul>
{% for line in budget %}
<li>{{ line }}</li>
{% endfor %}
</ul>

<h2>What went well</h2>
<ul>
{% for item in r.went_well %}
<li>{{ item }}</li>
{% else %}
<li>Nothing recorded.</li>
{% endfor %}
</ul>

<h2>What went wrong</h2>
<ul>
{% for item in r.went_wrong %}
<li>{{ item }}</li>
{% else %}
<li>Nothing recorded.</li>
{% endfor %}
</ul>

<h2>Actions</h2>
{% if r.actions %}
<table>
<tr><th>Start</th><th>Host</th><th>Action</th><th>Result</th><th>Duration</th></tr>
{% for a in r.actions %}
<tr><td>{{ a.offset }}</td><td>{{ a.host }}</td><td>{{ a.action }}</td>
<td class="{{ a.result }}">{{ a.result }}</td><td>{{ a.duration }}</td></tr>
{% endfor %}
</table>
{% else %}
<p class="note">No actions were recorded (enable the mttr.recovery.timeline callback to record them).</p>
{% endif %}

<h2>Timeline</h2>
<table>
<tr><th>Time</th><th></th><th>Kind</th><th>Host</th><th>What</th><th>Result</th><th>Message</th></tr>
{% for e in r.timeline %}
<tr><td>{{ e.time | when }}</td><td>{{ e.offset }}</td><td>{{ e.kind }}</td><td>{{ e.host }}</td>
<td>{{ e.action }}</td><td class="{{ e.result }}">{{ e.result }}</td><td>{{ e.message }}</td></tr>
{% endfor %}
</table>

<h2>Open questions for the root cause</h2>
<ul>
{% for item in r.questions %}
<li>{{ item }}</li>
{% endfor %}
</ul>

<h2>Follow-up items</h2>
<ul>
{% for item in r.follow_ups %}
<li>{{ item }}</li>
{% endfor %}
</ul>
</body>
</html>
"""

STATUS_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #212121; }
.banner { padding: 1em; border-radius: .3em; color: white; font-size: 1.2em; }
.operational { background: #2e7d32; } .SEV1, .SEV2 { background: #c62828; } .SEV3, .SEV4 { background: #ef6c00; }
.incident { border: 1px solid #ccc; border-radius: .3em; padding: .5em 1em; margin: 1em 0; }
.resolved { color: #616161; }
.tag { display: inline-block; padding: 0 .4em; border-radius: .2em; color: white; font-size: .85em; }
.meta { color: #616161; font-size: .9em; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% if page.active %}
<p class="banner {{ page.worst }}">{{ page.active | length }} active incident
{{- '' if page.active | length == 1 else 's' }} affecting {{ page.affected | join(', ') }}</p>
{% else %}
<p class="banner operational">All systems operational</p>
{% endif %}
{% for group, items in [('Active incidents', page.active), ('Resolved incidents', page.resolved)] %}
{% if items %}
<h2>{{ group }}</h2>
{% for i in items %}
<div class="incident{{ ' resolved' if i.status == 'resolved' else '' }}" id="{{ i.id }}">
<h3>{{ i.id }}: {{ i.summary or '(no summary)' }}</h3>
<p><span class="tag {{ i.severity }}">{{ i.severity }}</span> <strong>{{ i.status }}</strong>
&middot; {{ i.services | join(', ') }}</p>
{% if i.latest %}
<p>{{ i.latest.message }} <span class="meta">({{ i.latest.time | when }})</span></p>
{% endif %}
<p class="meta">Opened {{ i.opened_at | when }}
{%- if i.resolved_at %}; resolved {{ i.resolved_at | when }} after {{ i.duration }}{% endif %}</p>
</div>
{% endfor %}
{% endif %}
{% endfor %}
{% if page.updated %}
<p class="meta">Last update {{ page.updated | when }}.</p>
{% endif %}
</body>
</html>
"""


def impact_lines(report):
    impact = report["impact"]
    until = "now (ongoing)" if impact["ongoing"] else short_time(impact["restored_at"])
    lines = [
        f"Services: {', '.join(impact['services'])}",
        f"Severity: {impact['severity']}",
        f"Duration: {impact['downtime']}, from {short_time(impact['started_at'])} to {until}",
    ]
    if "probes_total" in impact:
        lines.append(f"Probes down: {impact.get('probes_down', 0)} of {impact['probes_total']}")
    if "users_affected" in impact:
        lines.append(f"Users affected: {impact['users_affected']}")
    if "data_loss" in impact:
        lines.append(f"Data loss: {'yes' if impact['data_loss'] else 'no'}")
    return lines


def budget_lines(report):
    budget = report["error_budget"]
    return [
        f"SLO: {budget['slo_percent']} % over {budget['window_days']} days, a budget of {budget['budget']} of downtime",
        f"This incident: {budget['consumed']} ({budget['consumed_percent']} % of the budget)",
        f"Remaining after it: {budget['remaining']}" + (" (exhausted)" if budget["exhausted"] else ""),
    ]


def _markdown_text(value):
    return str(value).replace("\r", " ").replace("\n", " ")


def _markdown_cell(value):
    return _markdown_text(value or "").replace("|", "\\|")


def _environment(autoescape):
    if not HAS_JINJA2:
        raise IncidentError("rendering reports needs the jinja2 Python library (it comes with ansible-core)")
    env = jinja2.Environment(
        autoescape=autoescape, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )
    env.filters.update({"when": short_time, "md": _markdown_text, "cell": _markdown_cell})
    return env


def render_markdown(report, chart_ref=None, chart_note=None):
    """The review in Markdown; the chart is an image reference to ``chart_ref`` (a file beside it), else a note."""
    note = chart_note or chart_unavailable() or "The timeline chart is drawn in the HTML report."
    return (
        _environment(False)
        .from_string(MARKDOWN)
        .render(
            r=report, chart_ref=chart_ref, chart_note=note, impact=impact_lines(report), budget=budget_lines(report)
        )
    )


def render_html(report, chart=True):
    """The review as one HTML page, the chart embedded as a PNG data URI (or a note saying what it needs)."""
    png = draw_chart(report) if chart else None
    if png:
        uri, note = data_uri(png), None
    else:
        uri, note = None, (chart_unavailable() if chart else None) or "The timeline chart was turned off."
    lines = {"impact": impact_lines(report), "budget": budget_lines(report)}
    return _environment(True).from_string(HTML).render(r=report, chart_uri=uri, chart_note=note, **lines)


def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


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


def render_status_page(page, title="Service status"):
    return _environment(True).from_string(STATUS_PAGE).render(page=page, title=title)


# ---------------------------------------------------------------------------------------------- writing


def chart_path_for(dest):
    """Where the Markdown report's chart goes: ``<dest without .md>.timeline.png``."""
    root, ext = os.path.splitext(dest)
    return (root if ext.lower() in (".md", ".markdown") else dest) + ".timeline.png"


def render_files(report, fmt, dest=None, chart=True):
    """``{path: bytes}`` to write for a report in ``fmt`` at ``dest`` (None: the content under the key None).

    Markdown written to a file gets its chart as a PNG beside it; on standard output it gets a note instead.
    """
    if fmt not in FORMATS:
        raise IncidentError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "json":
        return {dest: render_json(report).encode()}
    if fmt == "html":
        return {dest: render_html(report, chart=chart).encode()}
    files = {}
    png = draw_chart(report) if chart and dest else None
    if png:
        chart_file = chart_path_for(dest)
        files[chart_file] = png
        text = render_markdown(report, chart_ref=os.path.basename(chart_file))
    elif not chart:
        text = render_markdown(report, chart_note="The timeline chart was turned off.")
    elif dest is None:
        text = render_markdown(
            report,
            chart_note=chart_unavailable()
            or "The timeline chart is written beside the report when it goes to a file (-o / dest), "
            "and embedded in the HTML report.",
        )
    else:
        text = render_markdown(report)
    files[dest] = text.encode()
    return files


def write_files(files, check_mode=False):
    """Write each ``{path: bytes}`` whose content differs, atomically; return the paths that changed (or would).

    A replaced file keeps its mode; a new one gets the umask's default, as ``open()`` would give it.
    """
    changed = []
    for path, content in files.items():
        try:
            with open(path, "rb") as handle:
                if handle.read() == content:
                    continue
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise IncidentError(f"cannot read {path}: {exc}") from None
        changed.append(path)
        if not check_mode:
            _replace(path, content, mode)
    return changed


def _replace(path, content, mode):
    directory = os.path.dirname(os.path.abspath(path))
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".mttr-report-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise IncidentError(f"cannot write {path}: {exc}") from None
