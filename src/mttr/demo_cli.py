"""``mttr demo``: the lab started and backed up, then each scenario broken and recovered by ``mttr recover`` alone.

Ends with the table of measured MTTRs (from the break to the incident's resolution, as the incident record
has them) and the paths of the reviews. After ``primary-down`` the old primary is rejoined as a standby
(the failover playbook's rejoin), so the next scenario starts with redundancy restored.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console
from rich.table import Table

SCENARIOS = ("primary-down", "bad-release", "data-loss", "app-crash")


class DemoError(Exception):
    """The demo cannot go on; one line says why."""


def add_parser(commands) -> None:
    demo = commands.add_parser(
        "demo", help="start the lab, back it up, then break and recover each scenario with 'mttr recover'"
    )
    demo.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"the scenarios, in order (default: {' '.join(SCENARIOS)})"
    )
    demo.add_argument("--port-base", default=None, help="first port of the lab's range (default 24300)")


def playbook(home: Path, name: str, extravars: dict | None = None) -> None:
    import ansible_runner

    from .plan_cli import REPO_LAB
    from .recover_cli import PLAYBOOK

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    (home / "demo").mkdir(parents=True, exist_ok=True)
    runner = ansible_runner.run(
        private_data_dir=str(home / "demo"),
        ident=f"{stamp}-{name}",
        project_dir=str(PLAYBOOK.parent),
        playbook=f"{name}.yml",
        inventory=str(REPO_LAB),
        extravars=extravars or {},
        envvars={"MTTR_HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
        quiet=True,
        suppress_env_files=True,
    )
    if runner.status != "successful":
        raise DemoError(f"the {name} playbook {runner.status}: see {home / 'demo' / 'artifacts' / runner.config.ident}")


def run(args, console: Console) -> int:
    from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore, default_store_path

    from . import recover_cli
    from .lab import core

    scenarios = args.scenarios or list(SCENARIOS)
    unknown = [name for name in scenarios if name not in SCENARIOS]
    if unknown:
        raise DemoError(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    lab = core.open_or_create(os.environ.get("MTTR_HOME"), args.port_base)
    home = Path(lab.cfg.home)
    os.environ["MTTR_HOME"] = str(home)
    console.rule("Start the lab")
    lab.up(lambda message: console.print(message, soft_wrap=True))
    console.rule("Back up the orders database (S3 endpoint and a local repository)")
    playbook(home, "backup")
    rows = []
    for scenario in scenarios:
        console.rule(f"Break it: {scenario}")
        broken_at = time.time()
        console.print(lab.break_(scenario), soft_wrap=True, highlight=False)
        console.rule(f"mttr recover --service orders ({scenario})")
        options = SimpleNamespace(
            service="orders",
            failure_mode=None,
            strategy=None,
            incident=None,
            inventory=None,
            check=False,
            from_start=False,
            extra_vars=[],
        )
        code = recover_cli.run(options, console)
        with IncidentStore(default_store_path()) as store:
            record = store.list(service="orders")[-1]
            timeline = store.timeline(record["id"])
        plan = recover_cli.recorded_plan(timeline) or {"steps": []}
        resolved = record.get("resolved_at")
        mttr_s = datetime.datetime.fromisoformat(resolved).timestamp() - broken_at if resolved else None
        review = home / "reviews" / f"{record['id']}.html"
        rows.append(
            (
                scenario,
                ", ".join(step["strategy"] for step in plan["steps"]) or "-",
                record["id"],
                record["status"],
                f"{mttr_s:.1f}s" if mttr_s is not None else "-",
                str(review) if review.exists() else "-",
            )
        )
        if code != 0:
            break
        if scenario == "primary-down":
            console.rule("Restore redundancy: rejoin the old primary as a standby of the new one")
            playbook(home, "failover", {"failover_rejoin": True})
    table = Table(title="measured MTTR: from the break to the incident's resolution")
    for column in ("scenario", "strategy", "incident", "status", "MTTR", "review"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f'The lab keeps running: "mttr lab status", "mttr lab down" (home {home}).', highlight=False)
    return 0 if len(rows) == len(scenarios) and all(row[3] == "resolved" for row in rows) else 1
