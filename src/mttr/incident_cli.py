"""``mttr incident``: open, list, show, acknowledge and resolve incidents in the same store the
``incident`` module and the ``timeline`` callback use."""

from __future__ import annotations

import argparse
import json
import os

from rich.console import Console
from rich.table import Table

from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import humanize
from ansible_collections.mttr.recovery.plugins.module_utils.incident_ops import ensure
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
    SEVERITIES,
    IncidentError,
    IncidentStore,
    UnknownIncident,
    default_store_path,
)

TRANSITIONS = {"ack": "acknowledged", "mitigate": "mitigated", "resolve": "resolved", "escalate": "escalated"}


def add_parser(commands) -> None:
    incident = commands.add_parser("incident", help="open, list, show, acknowledge and resolve incidents")
    incident.add_argument("--store", default=None, help="the incident store (default: incidents.sqlite in MTTR_HOME)")
    actions = incident.add_subparsers(dest="action", metavar="ACTION", required=True)
    opened = actions.add_parser("open", help="open an incident")
    opened.add_argument("--service", action="append", required=True, help="affected service (repeatable)")
    opened.add_argument("--severity", choices=SEVERITIES, default="SEV3")
    opened.add_argument("--summary", default="")
    opened.add_argument("--id", dest="incident_id", default=None, help="use this id instead of INC-YYYYMMDD-NNN")
    opened.add_argument(
        "--takeover",
        action="store_true",
        help="take the services' recovery locks from the incident holding them (when its recovery is gone)",
    )
    listing = actions.add_parser("list", help="list incidents")
    listing.add_argument("--status", default=None)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="show an incident and its timeline")
    show.add_argument("incident_id")
    show.add_argument("--json", action="store_true")
    for name, status in TRANSITIONS.items():
        action = actions.add_parser(name, help=f"mark an incident {status}")
        action.add_argument("incident_id")
        action.add_argument("--note", default=None)


# Commands that only read: they work on a copy in memory, so they never create or change a store.
READ_ONLY = ("list", "show")


def run(args: argparse.Namespace, console: Console) -> int:
    path = os.path.abspath(os.path.expanduser(args.store or default_store_path()))
    if args.action in READ_ONLY:
        store = IncidentStore.snapshot(path)
    elif args.action != "open" and not os.path.exists(path):
        raise IncidentError(f"no incident {args.incident_id}: {no_store(path)}")
    else:
        store = IncidentStore(path)
    try:
        return _run(args, store, path, console)
    except UnknownIncident:
        if args.action not in READ_ONLY:
            raise
        # The copy's own path is ':memory:'; name the real store.
        if os.path.exists(path):
            raise UnknownIncident(f"no incident {args.incident_id} in {path}: check the id") from None
        raise UnknownIncident(f"no incident {args.incident_id}: {no_store(path)}") from None
    finally:
        store.close()


def no_store(path: str) -> str:
    return (
        f"there is no incident store at {path} (point --store or MTTR_HOME at the store; "
        "'mttr incident open' creates one)"
    )


def _run(args, store: IncidentStore, path: str, console: Console) -> int:
    if args.action == "open":
        # the same rule as the incident module: opening takes the services' recovery locks
        result = ensure(
            store,
            "open",
            incident_id=args.incident_id,
            services=args.service,
            severity=args.severity,
            summary=args.summary,
            takeover=args.takeover,
            where=path,
        )
        record = result["incident"]
        console.print(
            f"{'Opened' if result['changed'] else 'Already open:'} {record['id']} ({record['severity']}, "
            f"{', '.join(record['services'])})",
            soft_wrap=True,
        )
        return 0
    if args.action == "list":
        records = store.list(status=args.status)
        if args.json:
            print(json.dumps(records, indent=2, default=str))
            return 0
        if not records:
            where = f"in {path}" if os.path.exists(path) else f"yet: {no_store(path)}"
            console.print(
                f"No incidents{f' with status {args.status}' if args.status else ''} {where}.", soft_wrap=True
            )
            return 0
        table = Table(title="incidents")
        for column in ("id", "severity", "status", "services", "opened", "to resolve", "summary"):
            table.add_column(column, overflow="fold")
        for record in records:
            table.add_row(
                record["id"],
                record["severity"],
                record["status"],
                ", ".join(record["services"]),
                record["opened_at"][:19],
                humanize(record["durations"].get("time_to_resolve_s")),
                record["summary"],
            )
        console.print(table)
        return 0
    if args.action == "show":
        record = store.get(args.incident_id)
        timeline = store.timeline(args.incident_id)
        if args.json:
            print(json.dumps({"incident": record, "timeline": timeline}, indent=2, default=str))
            return 0
        durations = record["durations"]
        console.print(
            f"[bold]{record['id']}[/] {record['severity']} {record['status']} - {record['summary']}", soft_wrap=True
        )
        console.print(
            f"services: {', '.join(record['services'])}; to acknowledge "
            f"{humanize(durations.get('time_to_acknowledge_s'))}, to mitigate "
            f"{humanize(durations.get('time_to_mitigate_s'))}, to resolve "
            f"{humanize(durations.get('time_to_resolve_s'))}",
            soft_wrap=True,
        )
        table = Table(title="timeline")
        for column in ("time", "kind", "host", "action", "result", "duration", "message"):
            table.add_column(column, overflow="fold")
        for entry in timeline:
            table.add_row(
                entry["time"][11:23],
                entry["kind"],
                entry.get("host") or "",
                entry.get("action") or "",
                str(entry.get("result") or ""),
                "" if entry.get("duration") is None else f"{entry['duration']:.2f}s",
                entry.get("message") or "",
            )
        console.print(table)
        return 0
    result = ensure(store, TRANSITIONS[args.action], incident_id=args.incident_id, note=args.note, where=path)
    record = result["incident"]
    console.print(
        f"{record['id']} is {record['status']}" + ("" if result["changed"] else " (unchanged)"), soft_wrap=True
    )
    return 0


__all__ = ["IncidentError", "add_parser", "run"]
