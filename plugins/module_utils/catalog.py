# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service catalog's rules, in one place for the inventory plugin, the filters and the CLI.

A catalog maps service names to their description: ``tier`` (0 most critical .. 3), ``owner``,
``depends_on`` (other services), ``hosts`` (component -> host names), ``strategies`` (failure mode ->
strategy), ``probes``, ``integrity_checks``, ``slo``. ``recovery_order`` says in which order to recover
a set of affected services: every dependency before its dependants (also through services that are not
affected themselves), and among services free to go, the lower tier first, then by name, so the order is
the same every time. A dependency cycle is an error that names it.
"""

from __future__ import annotations

import heapq
import re

TIERS = (0, 1, 2, 3)


class CatalogError(ValueError):
    """The catalog, or what is asked of it, is wrong; the message names the service and what to fix."""


def tier_of(services, name):
    tier = services[name].get("tier", 3)
    if tier not in TIERS:
        raise CatalogError(f"service {name}: tier must be one of 0, 1, 2, 3 (0 the most critical), got {tier!r}")
    return tier


def dependencies(services, name):
    """The services ``name`` depends on, checked to exist."""
    found = services[name].get("depends_on") or []
    if isinstance(found, str):
        found = [found]
    for dependency in found:
        if dependency not in services:
            raise CatalogError(
                f"service {name} depends on {dependency}, which is not in the catalog "
                f"(it has {', '.join(sorted(services))})"
            )
        if dependency == name:
            raise CatalogError(f"service {name} depends on itself")
    return list(found)


def find_cycle(services, start_names):
    """A dependency cycle reachable from ``start_names`` as a list ``[a, b, ..., a]``, or None."""
    state = {}  # name -> "visiting" | "done"
    path = []

    def visit(name):
        state[name] = "visiting"
        path.append(name)
        for dependency in dependencies(services, name):
            if state.get(dependency) == "visiting":
                return [*path[path.index(dependency) :], dependency]
            if dependency not in state:
                cycle = visit(dependency)
                if cycle:
                    return cycle
        path.pop()
        state[name] = "done"
        return None

    for name in sorted(start_names):
        if name not in state:
            cycle = visit(name)
            if cycle:
                return cycle
    return None


def check_services(services, names):
    unknown = [name for name in names if name not in services]
    if unknown:
        raise CatalogError(
            f"unknown service {', '.join(unknown)}: the catalog has {', '.join(sorted(services)) or 'no services'}"
        )


def recovery_order(affected, services):
    """The affected services in the order to recover them (see the module's description)."""
    if isinstance(affected, str):
        affected = [affected]
    affected = list(dict.fromkeys(affected))
    check_services(services, affected)
    cycle = find_cycle(services, affected)
    if cycle:
        raise CatalogError(f"dependency cycle in the catalog: {' -> '.join(cycle)}; break it before recovering")
    # every affected service's affected (transitive) dependencies must come first
    needs = {name: transitive(services, name) & set(affected) for name in affected}
    waiting = {name: set(deps) for name, deps in needs.items()}
    ready = [(tier_of(services, name), name) for name in affected if not waiting[name]]
    heapq.heapify(ready)
    order = []
    while ready:
        _tier, name = heapq.heappop(ready)
        order.append(name)
        for other, deps in waiting.items():
            if name in deps:
                deps.discard(name)
                if not deps:
                    heapq.heappush(ready, (tier_of(services, other), other))
    return order


def transitive(services, name):
    """Every service ``name`` depends on, directly or not."""
    seen = set()
    stack = list(dependencies(services, name))
    while stack:
        dependency = stack.pop()
        if dependency not in seen:
            seen.add(dependency)
            stack.extend(dependencies(services, dependency))
    return seen


def group_name(service, component=None):
    """The inventory group of a service (or of one of its components): non-alphanumerics become ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(service if component is None else f"{service}_{component}"))


def dependents(services, name):
    """The services that depend on ``name`` directly, by name."""
    return sorted(other for other in services if name in (dependencies(services, other) if other != name else []))


def service_groups(services, name, component=None, with_dependents=False):
    """The groups of ``name`` (and, with ``with_dependents``, of the services that depend on it) that exist in
    the catalog: the service groups, or only those of ``component`` (``lb``, ``app``...)."""
    check_services(services, [name])
    names = [name, *(dependents(services, name) if with_dependents else [])]
    if component is None:
        return [group_name(one) for one in names]
    return [group_name(one, component) for one in names if component in (services[one].get("hosts") or {})]
