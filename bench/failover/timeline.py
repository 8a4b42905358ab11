"""What a failover run's output says, as times from its start (t0): per task, from ansible-runner's job
events or from the CLI's timestamped output lines, and the modules' own timings."""

from __future__ import annotations

import ast
import contextlib
import datetime
import re

# the task names the timeline looks for: the role's (playbooks/failover.yml) and the lean prototype's
TASK_PROBE = "Probe every database node for its role and lag"  # the role's, before the one-call failover
TASK_FAILOVER = "Fence the old primary, promote the standby, prove a write"  # the lean prototype's task
TASK_ONE_CALL = "Drain, fence, promote, prove a write and switch the load balancers"  # the role's, since the one-call
TASK_LB = "Send write traffic to the new primary"
TASK_VALIDATE = "Validate the service through the load balancer"


def rel(stamp, origin):
    return None if stamp is None or origin is None else round(stamp - origin, 4)


def parse_iso(text):
    stamp = datetime.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


def cli_timeline(lines, t0):
    """Task start (its TASK header) and first result line per task, from the timestamped CLI output."""
    tasks = []
    current = None
    for stamp, text in lines:
        match = re.match(r"TASK \[(?:[^\]:]+ : )?(.*)\] \**$", text)
        if match:
            current = {"task": match.group(1), "start_s": rel(stamp, t0), "first_result_s": None}
            tasks.append(current)
        elif text.startswith("PLAY RECAP"):
            tasks.append({"task": "PLAY RECAP", "start_s": rel(stamp, t0), "first_result_s": None})
            current = None
        elif current and current["first_result_s"] is None and re.match(r"(ok|changed|skipping|included|fatal):", text):
            current["first_result_s"] = rel(stamp, t0)
    return tasks


def cli_module_timings(lines):
    for line in lines:
        match = re.search(r'"timings: (\{.*\})"', line[1])
        if match:
            with contextlib.suppress(ValueError, SyntaxError):
                return ast.literal_eval(match.group(1))
    return None


def runner_timeline(events, t0):
    """Per task: controller start, result end, the worker's duration; plus playbook start and stats."""
    tasks = {}
    order = []
    marks = {}
    for event in events:
        kind = event.get("event")
        data = event.get("event_data", {})
        created = parse_iso(event["created"]) if event.get("created") else None
        if kind == "playbook_on_start":
            marks["playbook_on_start_s"] = rel(created, t0)
        elif kind == "playbook_on_stats":
            marks["playbook_on_stats_s"] = rel(created, t0)
        uuid = data.get("task_uuid")
        if not uuid:
            continue
        if uuid not in tasks:
            tasks[uuid] = {"task": data.get("task"), "start_s": None, "end_s": None, "duration_s": None, "status": None}
            order.append(uuid)
        entry = tasks[uuid]
        if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            entry["start_s"] = rel(created, t0)
        elif kind in ("runner_on_ok", "runner_on_skipped", "runner_on_failed", "runner_item_on_ok"):
            end = rel(created, t0)
            entry["end_s"] = end if entry["end_s"] is None else max(entry["end_s"], end)
            if kind != "runner_item_on_ok":
                entry["status"] = kind.replace("runner_on_", "")
                if data.get("duration") is not None:
                    entry["duration_s"] = round(max(data["duration"], entry["duration_s"] or 0.0), 4)
    return [tasks[uuid] for uuid in order if tasks[uuid]["start_s"] is not None], marks


def runner_results(events):
    out = {}
    for event in events:
        data = event.get("event_data", {})
        if event.get("event") != "runner_on_ok":
            continue
        task = data.get("task") or ""
        res = data.get("res", {})
        if task in (TASK_FAILOVER, TASK_ONE_CALL):
            out["failover"] = {"timings": res.get("timings"), "fence": res.get("fence"), "msg": res.get("msg")}
            if res.get("load_balancers"):
                out["haproxy"] = [{"timings": lb.get("timings"), "msg": lb.get("msg")} for lb in res["load_balancers"]]
        elif task == TASK_LB:
            items = res.get("results") or [res]
            out["haproxy"] = [{"timings": item.get("timings"), "msg": item.get("msg")} for item in items]
        elif task == TASK_VALIDATE:
            out["validate"] = {"elapsed_s": res.get("elapsed_s"), "rounds": res.get("rounds"), "msg": res.get("msg")}
        elif task == TASK_PROBE:
            out["probe"] = {"elapsed_s": res.get("elapsed_s"), "failing": res.get("failing")}
    return out
