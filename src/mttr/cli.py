"""``mttr``: the command-line driver of mttr.recovery."""

from __future__ import annotations

import argparse
import json
import os
import sys

from rich.console import Console
from rich.table import Table

from . import __version__

STATE_STYLE = {"up": "green", "degraded": "yellow", "down": "red"}


def _import_error(exc: ImportError) -> int:
    print(
        f"mttr: error: the mttr.recovery collection is not importable ({exc}): run scripts/setup, "
        "which links the collection into the project virtualenv",
        file=sys.stderr,
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mttr", description="Service recovery driven by the mttr.recovery collection."
    )
    parser.add_argument("--version", action="version", version=f"mttr {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    home_help = "the lab's state directory (env MTTR_HOME; default ~/.local/state/mttr, /var/lib/mttr as root)"
    lab = commands.add_parser("lab", help="the embedded lab: a real service on loopback to break and recover")
    lab.add_argument("--home", default=None, help=home_help)
    # Each action takes --home too ('mttr lab up --home X'); SUPPRESS keeps an absent one from
    # overwriting a --home given before the action.
    action_options = argparse.ArgumentParser(add_help=False)
    action_options.add_argument("--home", default=argparse.SUPPRESS, help=home_help)
    actions = lab.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up", parents=[action_options], help="start (or complete) the lab and wait until everything answers"
    )
    up.add_argument(
        "--port-base", default=None, help="first port of the lab's range (env MTTR_LAB_PORT_BASE; default 24300)"
    )
    up.add_argument(
        "--replication",
        choices=["async", "sync"],
        default=None,
        help="streaming replication mode, kept for the lab (sync: every commit waits for the standby; default async)",
    )
    status = actions.add_parser("status", parents=[action_options], help="show each component's health")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    brk = actions.add_parser("break", parents=[action_options], help="inject a failure")
    brk.add_argument("scenario", metavar="SCENARIO", help="primary-down, bad-release, data-loss or app-crash")
    restart = actions.add_parser("restart", parents=[action_options], help="restart a lab component (app)")
    restart.add_argument("component", metavar="COMPONENT")
    down = actions.add_parser("down", parents=[action_options], help="stop every process the lab started")
    down.add_argument("--purge", action="store_true", help="also delete the lab's data under its home")
    actions.add_parser("env", parents=[action_options], help="print the lab's connection settings as shell exports")
    from .incident_cli import add_parser as add_incident_parser

    add_incident_parser(commands)
    from .report_cli import add_parser as add_report_parser

    add_report_parser(commands)
    from .plan_cli import add_parser as add_plan_parser

    add_plan_parser(commands)
    from .recover_cli import add_parser as add_recover_parser

    add_recover_parser(commands)
    from .demo_cli import add_parser as add_demo_parser

    add_demo_parser(commands)
    from .watch_cli import add_parser as add_watch_parser

    add_watch_parser(commands)
    return parser


def status_table(rows: list[dict]) -> Table:
    table = Table(title="mttr lab", show_lines=False)
    for column in ("component", "role", "state", "pid", "endpoint"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=1)
    for row in rows:
        style = STATE_STYLE.get(row["state"], "")
        table.add_row(
            row["component"],
            row["role"],
            f"[{style}]{row['state']}[/]",
            str(row["pid"] or "-"),
            row["endpoint"],
            row["detail"],
        )
    return table


def lab_command(args, console: Console) -> int:
    from .lab import config as labconfig
    from .lab import core

    def say(message: str) -> None:
        console.print(message, soft_wrap=True)

    home = args.home or os.environ.get("MTTR_HOME")
    if args.action == "up":
        lab = core.open_or_create(home, args.port_base, replication=args.replication)
        say(f"Lab home: {lab.cfg.home}")
        lab.up(say)
        console.print(status_table(lab.status()))
        return 0
    if not labconfig.exists(home):
        if args.action == "down":
            say(f"Nothing to stop: there is no lab under {labconfig.resolve_home(home)}.")
            return 0
        raise core.LabError(f"there is no lab under {labconfig.resolve_home(home)}: start one with 'mttr lab up'")
    lab = core.Lab.open(home)
    if args.action == "status":
        rows = lab.status()
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            console.print(status_table(rows))
        return 0 if all(row["state"] == "up" for row in rows) else 3
    if args.action == "break":
        say(f"Broke the lab ({args.scenario}): {lab.break_(args.scenario)}")
        return 0
    if args.action == "restart":
        lab.restart(args.component, say)
        return 0
    if args.action == "down":
        if lab.down(say) == 0:
            say(f"Nothing to stop: no lab process is running under {lab.cfg.home}.")
        if args.purge:
            lab.purge()
            say(f"Removed the lab's data under {lab.cfg.home}")
        return 0
    if args.action == "env":
        state = lab.cfg.state
        print(f"export MTTR_HOME={lab.cfg.home}")
        print(
            f"export PGHOST=127.0.0.1 PGPORT={state['ports']['lb_db']} PGDATABASE={state['db']['name']} "
            f"PGUSER={state['db']['app_user']}"
        )
        print(f"export AWS_ENDPOINT_URL={state['s3']['endpoint_url']} AWS_DEFAULT_REGION={state['s3']['region']}")
        return 0
    raise AssertionError(args.action)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Wide enough for the status table when piped (rich assumes 80 columns without a terminal).
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    try:
        from .lab import core
    except ImportError as exc:
        return _import_error(exc)
    LabError = core.LabError
    try:
        if args.command == "lab":
            return lab_command(args, console)
        if args.command == "incident":
            from .incident_cli import IncidentError
            from .incident_cli import run as incident_command

            try:
                return incident_command(args, console)
            except IncidentError as exc:
                print(f"mttr: error: {exc}", file=sys.stderr)
                return 1
        if args.command == "plan":
            from .plan_cli import PlanError
            from .plan_cli import run as plan_command

            try:
                return plan_command(args, console)
            except PlanError as exc:
                print(f"mttr: error: {exc}", file=sys.stderr)
                return 2
        if args.command == "recover":
            from .recover_cli import main_errors
            from .recover_cli import run as recover_command

            try:
                return recover_command(args, console)
            except Exception as exc:
                message, code = main_errors(exc)
                print(f"mttr: error: {message}", file=sys.stderr)
                return code
        if args.command == "demo":
            from .demo_cli import DemoError
            from .demo_cli import run as demo_command
            from .recover_cli import main_errors

            try:
                return demo_command(args, console)
            except DemoError as exc:
                print(f"mttr: error: {exc}", file=sys.stderr)
                return 1
            except Exception as exc:
                message, code = main_errors(exc)
                print(f"mttr: error: {message}", file=sys.stderr)
                return code
        if args.command == "watch":
            from .recover_cli import main_errors
            from .watch_cli import WatchError
            from .watch_cli import run as watch_command

            try:
                return watch_command(args, console)
            except WatchError as exc:
                print(f"mttr: error: {exc}", file=sys.stderr)
                return 2
            except Exception as exc:
                message, code = main_errors(exc)
                print(f"mttr: error: {message}", file=sys.stderr)
                return code
        if args.command == "report":
            from .report_cli import IncidentError
            from .report_cli import run as report_command

            try:
                return report_command(args)
            except IncidentError as exc:
                print(f"mttr: error: {exc}", file=sys.stderr)
                return 1
    except LabError as exc:
        print(f"mttr: error: {exc}", file=sys.stderr)
        return 1
    except core.psycopg.Error as exc:
        print(f"mttr: error: PostgreSQL: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mttr: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mttr: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
