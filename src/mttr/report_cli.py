"""``mttr report INC-ID``: the post-incident review draft of an incident, from the same store the
``incident`` module, the ``timeline`` callback and ``mttr incident`` use."""

from __future__ import annotations

import argparse
import os
import sys

from ansible_collections.mttr.recovery.plugins.module_utils.incident_report import render_files, write_files
from ansible_collections.mttr.recovery.plugins.module_utils.incident_review import (
    DEFAULT_SLO,
    DEFAULT_WINDOW_DAYS,
    build_report,
    load,
)
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentError, default_store_path


def add_parser(commands) -> None:
    report = commands.add_parser(
        "report",
        help="write an incident's post-incident review draft (Markdown or HTML)",
        description="The post-incident review draft of an incident: summary, impact, error-budget cost, "
        "timeline, actions, what went well and wrong, questions and follow-ups. The HTML embeds the "
        "timeline chart; Markdown written with -o gets it as FILE.timeline.png beside it. The chart "
        "needs matplotlib: the report extra, installed from the mttr checkout with pip install -e '.[report]'.",
    )
    report.add_argument("incident_id", metavar="INC-ID")
    report.add_argument("--format", choices=("md", "html"), default="md", help="default: md")
    report.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="write here instead of stdout (its directory must exist)"
    )
    report.add_argument("--store", default=None, help="the incident store (default: incidents.sqlite in MTTR_HOME)")
    report.add_argument("--slo", type=float, default=DEFAULT_SLO, help=f"availability SLO (default {DEFAULT_SLO})")
    report.add_argument(
        "--window-days", type=int, default=DEFAULT_WINDOW_DAYS, help=f"SLO window (default {DEFAULT_WINDOW_DAYS})"
    )
    report.add_argument("--no-chart", action="store_true", help="leave the timeline chart out")


def check_output(path: str) -> None:
    """Refuse an output path whose directory is missing (it is not created: a typo would go unnoticed)."""
    if os.path.isdir(path):
        raise IncidentError(
            f"cannot write the report to {path}: {path} is a directory; name the file, such as -o {path}/review.md"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(directory):
        return
    missing = directory
    while not os.path.exists(os.path.dirname(missing)):
        missing = os.path.dirname(missing)
    blocker = missing if os.path.exists(missing) else os.path.dirname(missing)
    if not os.path.isdir(blocker):
        raise IncidentError(f"cannot write the report to {path}: {blocker} is not a directory")
    raise IncidentError(
        f"cannot write the report to {path}: {missing} does not exist; create it first (mkdir -p {directory}) "
        "or choose another -o"
    )


def run(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output)
    record, timeline = load(args.store or default_store_path(), args.incident_id)
    try:
        report = build_report(record, timeline, slo=args.slo, window_days=args.window_days)
    except ValueError as exc:
        raise IncidentError(str(exc)) from None
    files = render_files(report, args.format, dest=args.output, chart=not args.no_chart)
    if args.output is None:
        sys.stdout.write(files[None].decode())
        return 0
    changed = write_files(files)
    for path in files:
        print(f"{'Wrote' if path in changed else 'Unchanged:'} {path}", file=sys.stderr)
    return 0


__all__ = ["IncidentError", "add_parser", "run"]
