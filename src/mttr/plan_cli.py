"""``mttr plan --service NAME``: the ordered recovery plan from the inventory's service catalog, nothing run.

The inventory is read by ``ansible-inventory`` itself (so every inventory source and plugin works as it
does for the playbooks); the catalog is the ``mttr_catalog`` the ``mttr.recovery.service_catalog`` plugin
sets, and the order is the ``recovery_order`` rule (module_utils/catalog.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ansible_collections.mttr.recovery.plugins.module_utils.catalog import (
    CatalogError,
    check_services,
    group_name,
    recovery_order,
    tier_of,
    transitive,
)

REPO_LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


class PlanError(Exception):
    """What is asked cannot be planned; one line says why (exit code 2)."""


def add_parser(commands) -> None:
    plan = commands.add_parser(
        "plan",
        help="print the ordered recovery plan of a service from the inventory's catalog (runs nothing)",
    )
    plan.add_argument("--service", required=True, help="the affected service")
    plan.add_argument("--failure-mode", default=None, help="e.g. primary-down: show the strategy it calls for")
    plan.add_argument(
        "-i", "--inventory", default=None, help="inventory with a service catalog (default: the lab's, inventories/lab)"
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")


def unwrap(value):
    """ansible-inventory shows untrusted text (read from Backstage, say) as {"__ansible_unsafe": text}."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def read_inventory(source: str) -> dict:
    binary = Path(sys.executable).parent / "ansible-inventory"
    env = dict(os.environ, ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1", ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [str(binary), "-i", source, "--list"], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    if result.returncode != 0:
        reasons = re.findall(r"service_catalog: [^\n]+", result.stderr)
        raise PlanError(reasons[0] if reasons else f"cannot read the inventory {source}: {last_line(result.stderr)}")
    return unwrap(json.loads(result.stdout))


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith("Origin:")]
    return lines[-1] if lines else "no output"


def build_plan(listing: dict, service: str, failure_mode: str | None = None) -> dict:
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    catalog = next((vars_["mttr_catalog"] for vars_ in hostvars.values() if "mttr_catalog" in vars_), None)
    if catalog is None:
        raise PlanError(
            "the inventory has no service catalog: add a source with 'plugin: mttr.recovery.service_catalog' "
            "(a file named ...catalog.yml)"
        )
    try:
        check_services(catalog, [service])
        involved = [service, *sorted(transitive(catalog, service))]
        order = recovery_order(involved, catalog)
    except CatalogError as exc:
        raise PlanError(str(exc)) from None
    steps = []
    for name in order:
        entry = catalog[name]
        components = {}
        for component in entry.get("hosts") or {}:
            group = group_name(name, component)
            components[component] = listing.get(group, {}).get("hosts", [])
        strategies = entry.get("strategies") or {}
        step = {
            "service": name,
            "tier": tier_of(catalog, name),
            "owner": entry.get("owner"),
            "role": "affected" if name == service else "dependency (probed first)",
            "hosts": components,
            "strategies": strategies,
        }
        if failure_mode and name == service:
            if failure_mode not in strategies:
                raise PlanError(
                    f"service {service} has no strategy for failure mode {failure_mode} "
                    f"(it has: {', '.join(strategies) or 'none'}); add one to the catalog"
                )
            chosen = strategies[failure_mode]
            step["strategy"] = chosen if isinstance(chosen, str) else chosen.get("strategy")
        steps.append(step)
    return {"service": service, "failure_mode": failure_mode, "steps": steps}


def run(args, console: Console) -> int:
    source = args.inventory or str(REPO_LAB)
    plan = build_plan(read_inventory(source), args.service, args.failure_mode)
    if args.json:
        print(json.dumps(plan, indent=2))
        return 0
    table = Table(title=f"recovery plan for {args.service}" + (f" ({args.failure_mode})" if args.failure_mode else ""))
    for column in ("#", "service", "tier", "role", "hosts", "strategy"):
        table.add_column(column, overflow="fold")
    for number, step in enumerate(plan["steps"], 1):
        hosts = "; ".join(f"{component}: {', '.join(names) or '-'}" for component, names in step["hosts"].items())
        strategy = step.get("strategy") or ", ".join(
            f"{mode}: {value if isinstance(value, str) else value.get('strategy')}"
            for mode, value in step["strategies"].items()
        )
        table.add_row(str(number), step["service"], str(step["tier"]), step["role"], hosts or "-", strategy or "-")
    console.print(table)
    return 0
