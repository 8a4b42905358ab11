"""``mttr recover --service NAME``: one command per incident.

Opens the incident (or attaches to the one given), then runs the collection's ``recover`` playbook through
ansible-runner's Python API with a private data dir per incident (``$MTTR_HOME/incidents/<ID>/``, one ``ident``
per run, artifacts kept), shows live progress from runner events, and ends with a summary table read from
the incident's timeline. Everything the lifecycle decides (plan, resume, undo, escalation) lives in the
playbook and the engines, so AWX and EDA running the same playbook behave alike.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ansible_collections.mttr.recovery.plugins.module_utils.incident_ops import ensure, find
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
    IncidentError,
    IncidentStore,
    LockHeld,
    default_store_path,
    durations,
)
from ansible_collections.mttr.recovery.plugins.module_utils.lab_state import default_home
from ansible_collections.mttr.recovery.plugins.module_utils.processes import pid_alive
from ansible_collections.mttr.recovery.plugins.module_utils.recovery import (
    recorded_plan,
    since_last_plan,
    with_progress,
)

from .plan_cli import REPO_LAB, PlanError, build_plan, read_inventory

COLLECTION = Path(__file__).resolve().parents[2]
PLAYBOOK = COLLECTION / "playbooks" / "recover.yml"
SHOWN = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable")


class RecoverError(Exception):
    """What is asked cannot start; one line says why (exit code 2)."""


def add_parser(commands) -> None:
    recover = commands.add_parser(
        "recover", help="recover a service: triage, contain, its strategy, validate, resolve (or undo and escalate)"
    )
    recover.add_argument("--service", required=True, help="the affected service, as named in the catalog")
    recover.add_argument("--failure-mode", default=None, help="how it failed (default: the probes tell)")
    recover.add_argument("--strategy", default=None, help="the strategy, over the catalog's")
    recover.add_argument("--incident", default=None, help="attach to this incident (resume it)")
    recover.add_argument(
        "-i", "--inventory", default=None, help="inventory with a service catalog (default: the lab's)"
    )
    recover.add_argument("--check", action="store_true", help="a preview: the whole lifecycle in check mode")
    recover.add_argument("--from-start", action="store_true", help="plan afresh instead of resuming the incident")
    recover.add_argument(
        "--detected-at", default=None, help="when the fault was detected (ISO 8601); a new incident is dated then"
    )
    recover.add_argument("-e", "--extra-vars", action="append", default=[], metavar="K=V", help="an extra var")


def mttr_home() -> Path:
    return Path(os.environ.get("MTTR_HOME") or default_home())


def extra_vars(pairs: list[str]) -> dict:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RecoverError(f"-e {pair!r}: give extra vars as key=value (a JSON list or object as value is parsed)")
        try:
            found[key.strip()] = json.loads(value) if value[:1] in ("[", "{") else value
        except ValueError as exc:
            raise RecoverError(f"-e {key.strip()}: the value looks like JSON but is not ({exc})") from None
    return found


def plan_hosts(plan: dict) -> list[str]:
    hosts = []
    for step in plan["steps"]:
        for names in step["hosts"].values():
            hosts.extend(name for name in names if name not in hosts)
    return hosts


def attach(store: IncidentStore, args) -> dict:
    """The incident to run under: the one given (checked), or a new one holding the service's lock."""
    if args.incident:
        record = find(store, args.incident)
        if record is None:
            raise RecoverError(f"no incident {args.incident} in {store.path}: check the id, or leave --incident out")
        if args.service not in record["services"]:
            raise RecoverError(
                f"incident {record['id']} is about {', '.join(record['services'])}, not {args.service}: "
                "leave --incident out to open one for it"
            )
        if record["status"] == "resolved":
            raise RecoverError(f"incident {record['id']} is resolved already: leave --incident out to open a new one")
        for lock in store.locks():
            mine = lock["incident_id"] == record["id"] and lock["pid"] != os.getpid()
            if mine and not lock["stale"] and pid_alive(lock["pid"]):
                raise LockHeld(lock["service"], record["id"], lock["since"], lock["pid"], lock["stale"], lock["host"])
        return ensure(store, state="open", incident_id=record["id"], lock=True, pid=os.getpid())["incident"]
    return ensure(
        store,
        state="open",
        services=[args.service],
        severity="SEV3",  # triage sets it from the probes
        summary=f"{args.service}: recovery started by mttr recover",
        pid=os.getpid(),
        opened_at=getattr(args, "detected_at", None),
    )["incident"]


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (by parent pid, so also those in sessions of their own)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def stop_tree(root: int, grace: float = 5.0) -> list[int]:
    """SIGTERM every descendant of ``root`` (modules, their tar or pg_restore), then SIGKILL what stays."""
    victims = descendants(root)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in victims):
        time.sleep(0.05)
    for pid in victims + descendants(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return victims


class Progress:
    """Live progress from runner events: phase, current task, host, elapsed; a line per finished task."""

    def __init__(self, console: Console):
        self.console = console
        self.started = time.monotonic()
        self.phase = "starting"
        self.task = ""
        self.host = ""
        self.task_started = {}
        self.live = None
        self.triage = None
        self.failed = []
        self.previews = []

    def render(self) -> Text:
        elapsed = time.monotonic() - self.started
        return Text.assemble(
            (f"{elapsed:6.1f}s ", "bold"), (f"{self.phase}", "cyan"), " | ", self.task[:70], (f"  [{self.host}]", "dim")
        )

    def event(self, data: dict) -> bool:
        kind = data.get("event")
        body = data.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.phase = body.get("play") or self.phase
        elif kind == "playbook_on_task_start":
            self.task = body.get("task") or ""
            self.task_started[body.get("task_uuid")] = time.monotonic()
        elif kind in SHOWN:
            self.host = body.get("host") or ""
            result = body.get("res") or {}
            took = time.monotonic() - self.task_started.get(body.get("task_uuid"), time.monotonic())
            if body.get("task_action") in ("mttr.recovery.recovery_plan",) and isinstance(result.get("plan"), dict):
                self.triage = result
            if kind == "runner_on_ok" and not result.get("changed"):
                pass
            else:
                mark = {"runner_on_ok": "[green]done[/]", "runner_on_failed": "[red]failed[/]"}.get(
                    kind, "[red]unreachable[/]"
                )
                if kind != "runner_on_ok" and not body.get("ignore_errors"):
                    self.failed.append(f"{body.get('task')}: {result.get('msg')}")
                self.console.print(
                    f"  {mark} {body.get('task')} [dim]on {self.host} in {took:.1f}s[/]",
                    highlight=False,
                    soft_wrap=True,
                )
        if self.live is not None:
            self.live.update(self.render())
        return True


def run(args, console: Console) -> int:
    try:
        import ansible_runner
    except ImportError:
        raise RecoverError("ansible-runner is not installed: run scripts/setup") from None
    source = args.inventory or str(REPO_LAB)
    # the watcher read the inventory once already and passes it: no second ansible-inventory per recovery
    listing = getattr(args, "listing", None) or read_inventory(source)
    plan = build_plan(listing, args.service, args.failure_mode)
    limit = ",".join(plan_hosts(plan))
    variables = extra_vars(args.extra_vars)
    home = mttr_home()
    store = IncidentStore(default_store_path())
    try:
        if args.check:
            incident = find(store, args.incident) if args.incident else None
            incident_id = incident["id"] if incident else None
        else:
            incident = attach(store, args)
            incident_id = incident["id"]
    finally:
        store.close()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    data_dir = home / "incidents" / (incident_id or "preview")
    ident = f"{stamp}-{'check' if args.check else 'run'}"
    data_dir.mkdir(parents=True, exist_ok=True)
    variables.update({"mttr_service": args.service, "mttr_from_start": args.from_start})
    if incident_id:
        variables["mttr_incident_id"] = incident_id
    if args.failure_mode:
        variables["mttr_failure_mode"] = args.failure_mode
    if args.strategy:
        variables["mttr_strategy"] = args.strategy
    env = {
        "MTTR_HOME": str(home),
        "ANSIBLE_CALLBACKS_ENABLED": "mttr.recovery.timeline",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    console.print(
        f"[bold]{'Preview of the recovery of' if args.check else 'Recovering'} {args.service}[/]"
        + (f" under {incident_id}" if incident_id else "")
        + f" (hosts {limit or '-'}; artifacts {data_dir / 'artifacts' / ident})",
        highlight=False,
    )
    progress = Progress(console)
    cancelled = {"asked": False, "done": False}

    def on_sigint(_signum, _frame):
        cancelled["asked"] = True

    def cancel_callback():
        if cancelled["asked"] and not cancelled["done"]:
            cancelled["done"] = True
            stop_tree(os.getpid())
        return cancelled["asked"]

    previous = signal.signal(signal.SIGINT, on_sigint)
    started = time.monotonic()
    try:
        with Live(progress.render(), console=console, transient=True, refresh_per_second=8) as live:
            progress.live = live
            runner = ansible_runner.run(
                private_data_dir=str(data_dir),
                ident=ident,
                project_dir=str(PLAYBOOK.parent),
                playbook=PLAYBOOK.name,
                inventory=os.path.abspath(source),
                extravars=variables,
                limit=limit or None,
                cmdline="--check" if args.check else None,
                envvars=env,
                event_handler=progress.event,
                cancel_callback=cancel_callback,
                quiet=True,
                rotate_artifacts=0,
                suppress_env_files=True,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    elapsed = time.monotonic() - started
    artifacts = data_dir / "artifacts" / ident
    if args.check:
        return preview(console, progress, runner, artifacts)
    return summary(console, args, incident_id, runner, artifacts, elapsed, cancelled["asked"])


def preview(console: Console, progress: Progress, runner, artifacts: Path) -> int:
    triage = progress.triage or {}
    plan = triage.get("plan") or {}
    table = Table(title="recovery preview (nothing was changed)")
    for column in ("#", "service", "failure mode", "strategy", "hosts", "undo on failed validation"):
        table.add_column(column, overflow="fold")
    for number, step in enumerate(plan.get("steps") or [], 1):
        table.add_row(
            str(number),
            step["service"],
            step["failure_mode"],
            step["strategy"],
            ", ".join(step["hosts"]),
            step.get("undo") or "not reversed: escalate",
        )
    console.print(table)
    if not plan.get("steps"):
        console.print(f"Nothing to recover: {plan.get('service', 'the service')} and its dependencies are healthy.")
    for note in plan.get("notes") or []:
        console.print(f"note: {note}", highlight=False)
    console.print(f"Runner artifacts: {artifacts}", highlight=False)
    if runner.status != "successful":
        for line in progress.failed[-3:]:
            print(f"mttr: error: {line}", file=sys.stderr)
        return 1
    return 0


def summary(console, args, incident_id, runner, artifacts, elapsed, cancelled) -> int:
    store = IncidentStore(default_store_path())
    try:
        if cancelled:
            store.append(
                incident_id,
                "step",
                f"run {artifacts.name} cancelled by the operator (Ctrl-C); resume with "
                f"'mttr recover --service {args.service} --incident {incident_id}'",
                action="run",
                result="cancelled",
            )
        record = store.get(incident_id)
        timeline = store.timeline(incident_id)
    finally:
        store.close()
    plan = recorded_plan(timeline)
    steps = with_progress(plan, since_last_plan(timeline))["steps"] if plan else []
    times = step_times(since_last_plan(timeline))
    table = Table(title=f"{incident_id} ({record['severity']}): {record['status']}")
    for column in ("service", "failure mode", "strategy", "hosts", "result", "took"):
        table.add_column(column, overflow="fold")
    for step in steps:
        took = times.get(step["id"])
        table.add_row(
            step["service"],
            step["failure_mode"],
            step["strategy"],
            ", ".join(step["hosts"]),
            step["status"],
            f"{took:.1f}s" if took is not None else "-",
        )
    console.print(table)
    validation = [
        entry for entry in since_last_plan(timeline) if entry["kind"] == "step" and entry["action"] == "validate"
    ]
    verdict = validation[-1] if validation else None
    console.print(f"Validation: {verdict['message'] if verdict else 'not reached'}", highlight=False)
    spans = durations(record)
    for key, label in (("time_to_mitigate_s", "mitigate"), ("time_to_resolve_s", "resolve")):
        if spans.get(key) is not None:
            console.print(f"Time to {label}: {spans[key]:.1f}s (from the incident's opening)", highlight=False)
    console.print(f"This run: {elapsed:.1f}s", highlight=False)
    reviews = [mttr_home() / "reviews" / f"{incident_id}.{ext}" for ext in ("md", "html")]
    found = [str(path) for path in reviews if path.exists()]
    if found:
        console.print(f"Review: {', '.join(found)}", highlight=False)
    console.print(f"Runner artifacts: {artifacts}", highlight=False)
    if cancelled:
        print(
            f"mttr: cancelled; {incident_id} stays {record['status']}: resume with "
            f"'mttr recover --service {args.service} --incident {incident_id}'",
            file=sys.stderr,
        )
        return 130
    passed = verdict is not None and verdict["result"] == "completed" and record["status"] == "resolved"
    if not passed:
        reason = verdict["message"] if verdict else last_failure(timeline) or f"the run ended {runner.status}"
        print(f"mttr: error: {incident_id} is {record['status']}, not recovered: {reason}", file=sys.stderr)
        return 1
    return 0


def step_times(timeline: list[dict]) -> dict:
    started, took = {}, {}
    for entry in timeline:
        if entry["kind"] != "step":
            continue
        when = datetime.datetime.fromisoformat(entry["time"])
        if entry["result"] == "started":
            started[entry["action"]] = when
        elif entry["action"] in started:
            took[entry["action"]] = (when - started[entry["action"]]).total_seconds()
    return took


def last_failure(timeline: list[dict]) -> str | None:
    failed = [entry for entry in timeline if entry.get("result") == "failed" and entry["kind"] in ("task", "step")]
    return failed[-1]["message"] if failed else None


def main_errors(exc: Exception) -> tuple[str, int]:
    if isinstance(exc, LockHeld):
        if exc.stale:
            return (
                f"{exc.service} is held by unresolved incident {exc.incident_id} (since {exc.since}), whose run "
                f"(pid {exc.pid}) is gone: resume it with 'mttr recover --service {exc.service} --incident "
                f"{exc.incident_id}', or resolve it ('mttr incident resolve {exc.incident_id}')"
            ), 1
        return f"{exc.service} is being recovered under incident {exc.incident_id} (pid {exc.pid}): {exc}", 1
    if isinstance(exc, (RecoverError, PlanError)):
        return str(exc), 2
    if isinstance(exc, IncidentError):
        return str(exc), 1
    raise exc
