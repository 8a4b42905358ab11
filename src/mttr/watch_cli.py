"""``mttr watch``: probe the catalogued services on an interval; after N failed rounds in a row, open an incident
dated at the first failed probe and run the same recovery as ``mttr recover``, once.

For teams without Event-Driven Ansible. Each round is one call of the probe engine (the ``health_check``
module's) over every watched service's probes and integrity checks, judged by the recovery engine's rule (the
one triage and validation use), so "failing" means the same thing everywhere. The probe definitions are the
inventory's (``mttr_probes``, ``mttr_integrity_checks``), rendered once at start by Ansible itself, so the
inventory's variables and lookups apply.

A service is not recovered again while an incident of it is unresolved (the per-service lock says so too),
and after a recovery it is left alone for ``--hold`` seconds: flapping is damped. One log line per decision;
Ctrl-C stops cleanly (a recovery running then is cancelled as ``mttr recover`` cancels, resumable).

With ``--listen HOST:PORT`` it also takes Alertmanager webhooks, through the collection's own event source
(``extensions/eda/plugins/event_source/alertmanager.py``: the same server, token check and parsing engine an
EDA rulebook uses), run in a thread: a firing alert for a watched service is a detection of its own, dated at
the alert's ``startsAt``, and goes through the same decision (open incident, hold-off) as failed probe rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from ansible_collections.mttr.recovery.plugins.module_utils.catalog import CatalogError, dependencies
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore, default_store_path
from ansible_collections.mttr.recovery.plugins.module_utils.probes import run_probes
from ansible_collections.mttr.recovery.plugins.module_utils.recovery import involved, members_of, probe_specs, verdict

from .plan_cli import REPO_LAB, PlanError, read_inventory

RENDER = """
- name: Render the probes the watcher runs
  hosts: all
  gather_facts: false
  tasks:
    - name: render
      ansible.builtin.debug:
        msg:
          services: "{{ mttr_services | default([]) }}"
          probes: "{{ mttr_probes | default([]) }}"
          integrity_checks: "{{ mttr_integrity_checks | default([]) }}"
          # what an in-process failover needs (the failover role's variables)
          pg: "{{ {'host': pg_host, 'port': pg_port | int, 'data_dir': pg_data | default(none),
                   'user': pg_user, 'password': pg_password, 'pg_bin': pg_bin | default(none),
                   'os_user': pg_os_user | default(none)} if pg_host is defined else none }}"
          haproxy: "{{ {'admin_socket': haproxy_admin_socket, 'backend': haproxy_db_backend}
                        if haproxy_admin_socket is defined and haproxy_db_backend is defined else none }}"
"""
# One quick round: a probe that does not answer within the timeout (the interval, between 0.5 and 1 s)
# counts as failed; a probe that sets its own timeout keeps it.
PROBE_DEFAULTS = {"timeout": 1.0, "retries": 0}


class WatchError(Exception):
    """The watcher cannot start; one line says why (exit code 2)."""


def add_parser(commands) -> None:
    watch = commands.add_parser(
        "watch", help="probe the catalogued services and recover one after N failed rounds (mttr recover)"
    )
    watch.add_argument("--service", action="append", default=[], help="a service to watch (default: every one)")
    watch.add_argument("-i", "--inventory", default=None, help="inventory with a service catalog (default: the lab's)")
    watch.add_argument("--interval", type=float, default=0.5, help="seconds between rounds (default 0.5)")
    watch.add_argument("--failures", type=int, default=2, help="failed rounds in a row before acting (default 2)")
    watch.add_argument(
        "--recover",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the recovery (default) or only open the incident",
    )
    watch.add_argument(
        "--hold", type=float, default=30.0, help="seconds a recovered service is left alone (default 30)"
    )
    watch.add_argument("--rounds", type=int, default=0, help="stop after this many rounds (default: never)")
    watch.add_argument(
        "--contain",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run a failover step in-process at the decision, then the playbook resumes after it (default)",
    )
    watch.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="also take Alertmanager webhooks here (the mttr.recovery.alertmanager event source's server)",
    )
    watch.add_argument(
        "--token-env",
        default="MTTR_WATCH_TOKEN",
        help="environment variable holding the bearer token webhooks must carry (default MTTR_WATCH_TOKEN)",
    )


def log(message: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    print(f"{stamp} {message}", flush=True)


def render(source: str, home: Path) -> dict:
    """Every host's services, probes and integrity checks, as Ansible renders them."""
    import ansible_runner

    base = home / "watch"
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base) as scratch:
        playbook = Path(scratch) / "render.yml"
        playbook.write_text(RENDER)
        runner = ansible_runner.run(
            private_data_dir=scratch,
            playbook=str(playbook),
            inventory=os.path.abspath(source),
            envvars={"MTTR_HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
            quiet=True,
            suppress_env_files=True,
        )
        hosts = {}
        for event in runner.events:
            data = event.get("event_data") or {}
            if event["event"] == "runner_on_ok" and data.get("task") == "render":
                hosts[data["host"]] = data["res"]["msg"]
        if runner.status != "successful":
            failed = [
                (event.get("event_data") or {}).get("res", {}).get("msg")
                for event in runner.events
                if event["event"] in ("runner_on_failed", "runner_on_unreachable")
            ]
            raise WatchError(f"cannot render the inventory's probes: {failed[0] if failed else runner.status}")
    return hosts


class Watcher:
    def __init__(self, catalog, hosts, services, args, recover):
        self.catalog = catalog
        self.args = args
        self.recover = recover
        self.services = services
        self.plans = {}
        needed = set()
        for service in services:
            order = involved(catalog, service)
            self.plans[service] = {
                "service": service,
                "services": order,
                "dependencies": {name: dependencies(catalog, name) for name in order},
                "steps": [],
            }
            needed.update(order)
        # the watched services' hosts, each with only the services watched (the rules are triage's)
        watched = {}
        for host, facts in hosts.items():
            services_here = [name for name in facts.get("services") or [] if name in needed]
            if services_here:
                watched[host] = dict(facts, services=services_here)
        self.members = members_of(watched)
        defaults = dict(PROBE_DEFAULTS, timeout=min(PROBE_DEFAULTS["timeout"], max(0.5, args.interval)))
        self.probes, self.checks = probe_specs(watched, defaults)
        self.failed_since = {}  # service -> (first failed time, rounds in a row)
        self.last = ([], [])
        self.hosts = hosts
        self.hold_until = {}

    def round(self):
        now = datetime.datetime.now(datetime.UTC)
        results = run_probes(self.probes + self.checks, run_command=run_command)
        probes, checks = results[: len(self.probes)], results[len(self.probes) :]
        self.last = (probes, checks)
        for service in self.services:
            found = verdict(self.plans[service], self.members, probes, checks)
            if found["passed"]:
                if service in self.failed_since:
                    log(f"{service}: healthy again after {self.failed_since[service][1]} failed round(s); no action")
                    del self.failed_since[service]
                continue
            first, count = self.failed_since.get(service, (now, 0))
            self.failed_since[service] = (first, count + 1)
            if count == 0:
                log(f"{service}: probe failed ({'; '.join(found['failures'])[:300]})")
            if count + 1 == self.args.failures:
                self.act(service, first, found)

    def alert(self, event):
        alert = event.get("alert") or {}
        service = alert.get("service")
        name = f"alert {alert.get('alertname') or 'alert'} ({alert.get('fingerprint')})"
        if alert.get("kind") != "firing":
            return
        if service not in self.services:
            log(f"{name} firing for {service or 'no known service'}: not watched here, ignored")
            return
        started = datetime.datetime.fromisoformat(alert["starts_at"]) if alert.get("starts_at") else None
        log(f"{service}: {name} firing since {alert.get('starts_at')}" + (" (again)" if alert.get("repeat") else ""))
        self.act(service, started or datetime.datetime.now(datetime.UTC), {"failures": [f"{name} firing"]})

    def act(self, service, first, found):
        if time.monotonic() < self.hold_until.get(service, 0):
            log(f"{service}: failing, but recovered less than {self.args.hold:g} s ago: holding off (flapping)")
            return
        with IncidentStore(default_store_path()) as store:
            open_ones = [record for record in store.list(service=service) if record["status"] != "resolved"]
        if open_ones:
            log(
                f"{service}: failing; incident {open_ones[-1]['id']} is {open_ones[-1]['status']}: not recovering again"
            )
            return
        detected = first.isoformat()
        log(
            f"{service}: {self.args.failures} failed rounds in a row since {detected}: "
            + ("recovering (mttr recover)" if self.args.recover else "opening an incident")
        )
        self.hold_until[service] = time.monotonic() + self.args.hold
        self.failed_since.pop(service, None)  # counted afresh after the recovery
        self.recover(service, detected, found)


SOURCE = "ansible_collections.mttr.recovery.extensions.eda.plugins.event_source.alertmanager"


def listen(spec: str, token: str | None, catalog_source: str, events: queue.Queue) -> threading.Thread:
    """Run the alertmanager event source in a thread; its events (and a failure to serve) land on ``events``."""
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        raise WatchError(f"--listen {spec!r}: give HOST:PORT, such as 127.0.0.1:5050")
    source = importlib.import_module(SOURCE)
    options = {"host": host or "127.0.0.1", "port": int(port), "catalog": catalog_source, "resolved": False}
    if token:
        options["token"] = token

    async def serve():
        inbox = asyncio.Queue(maxsize=1000)
        server = asyncio.create_task(source.main(inbox, options))
        while True:
            getter = asyncio.create_task(inbox.get())
            done, _pending = await asyncio.wait({server, getter}, return_when=asyncio.FIRST_COMPLETED)
            if server in done:
                getter.cancel()
                error = server.exception()
                events.put(("error", f"the webhook receiver on {spec} stopped: {error or 'it returned'}"))
                return
            events.put(("event", getter.result()))

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="mttr-watch-listen", daemon=True)
    thread.start()
    # say "listening" only once it is: a webhook sent right after would find nothing there
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((options["host"], options["port"]), timeout=0.5):
                return thread
        except OSError:
            if not thread.is_alive():
                break
            time.sleep(0.05)
    failed = [payload for kind, payload in list(events.queue) if kind == "error"]
    raise WatchError(failed[0] if failed else f"the webhook receiver on {spec} did not start listening within 30 s")


# The failover role's defaults (roles/failover/defaults/main.yml).
FAILOVER_MAX_LAG_BYTES = 16777216


def contain(catalog, listing, watcher, service, detected):
    """At the decision, run a failover step in-process with the failover engine, recorded on a new incident's
    timeline as the playbook records it, so ``mttr recover --incident`` resumes after it (validation, close).

    Only a plan whose first step is a failover qualifies (the step that stands between the fault and the first
    write); anything else, or a database whose connection facts the inventory lacks, returns None and the
    playbook does everything. Returns the incident's id.
    """
    from ansible_collections.mttr.recovery.plugins.module_utils.catalog import service_groups
    from ansible_collections.mttr.recovery.plugins.module_utils.failover_common import FailoverError
    from ansible_collections.mttr.recovery.plugins.module_utils.failover_postgres import (
        PgNode,
        failover_cluster,
        fence_data_dir,
    )
    from ansible_collections.mttr.recovery.plugins.module_utils.recovery import (
        RecoveryError,
        assess,
        open_and_plan,
        record_step,
    )

    probes, checks = watcher.last
    try:
        plan = assess(catalog, service, watcher.members, probes, checks)
    except (RecoveryError, CatalogError) as exc:
        log(f"{service}: triage in-process: {exc}; the playbook triages")
        return None
    step = plan["steps"][0] if plan["steps"] else None
    facts = {host: (watcher.hosts.get(host) or {}).get("pg") for host in (step or {}).get("hosts", [])}
    if step is None or step["strategy"] != "failover" or not facts or None in facts.values():
        return None
    groups = service_groups(catalog, step["service"], component="lb", with_dependents=True)[:1]
    balancers = [
        (watcher.hosts[host]["haproxy"]["admin_socket"], watcher.hosts[host]["haproxy"]["backend"])
        for group in groups
        for host in listing.get(group, {}).get("hosts", [])
        if (watcher.hosts.get(host) or {}).get("haproxy")
    ]
    nodes = [
        PgNode(host, pg["host"], pg["port"], pg["user"], pg["password"], data_dir=pg.get("data_dir"))
        for host, pg in facts.items()
    ]
    first = next(iter(facts.values()))
    with IncidentStore(default_store_path()) as store:
        incident_id, _changed = open_and_plan(
            store, plan, service, pid=os.getpid(), detected_at=detected, where=default_store_path()
        )
        record_step(
            store,
            incident_id,
            step["id"],
            "started",
            f"{step['service']} is {step['failure_mode']}: failover on {', '.join(facts)}, in-process by mttr watch",
            {"reversible": False},
        )
    log(f"{service}: {incident_id}: failing over {step['service']} in-process ({', '.join(facts)})")
    try:
        result = failover_cluster(
            nodes,
            balancers,
            run=run_command,
            pg_bin=first.get("pg_bin"),
            os_user=first.get("os_user"),
            max_lag_bytes=FAILOVER_MAX_LAG_BYTES,
            force=False,
        )
        if (result.get("fence") or {}).get("pending") and result.get("previous_primary"):
            by_name = {node.name: node for node in nodes}
            fence_data_dir(by_name[result["previous_primary"]], by_name[result["primary"]], first.get("os_user"))
    except FailoverError as exc:
        with IncidentStore(default_store_path()) as store:
            record_step(store, incident_id, step["id"], "failed", str(exc)[:400])
        log(f"{service}: {incident_id}: the in-process failover failed ({exc}); the playbook takes over")
        return incident_id
    with IncidentStore(default_store_path()) as store:
        if result.get("risk"):
            store.append(incident_id, "risk", result["risk"], action=step["id"])
        record_step(store, incident_id, step["id"], "completed", result.get("msg", "")[:400])
    log(f"{service}: {incident_id}: {result.get('msg', 'failed over')}")
    return incident_id


def run_command(argv, env=None):
    import subprocess

    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **(env or {})), check=False)
    except OSError as exc:
        return 127, "", f"cannot run {argv[0]}: {exc.strerror or exc}"
    return done.returncode, done.stdout, done.stderr


def run(args, console: Console) -> int:
    from . import recover_cli

    if args.interval <= 0 or args.failures < 1:
        raise WatchError("--interval must be positive and --failures at least 1")
    source = args.inventory or str(REPO_LAB)
    listing = read_inventory(source)
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    catalog = next((vars_["mttr_catalog"] for vars_ in hostvars.values() if "mttr_catalog" in vars_), None)
    if catalog is None:
        raise PlanError(
            "the inventory has no service catalog: add a source with 'plugin: mttr.recovery.service_catalog'"
        )
    services = args.service or sorted(catalog)
    try:
        for service in services:
            involved(catalog, service)
    except CatalogError as exc:
        raise WatchError(str(exc)) from None
    home = recover_cli.mttr_home()
    hosts = render(source, home)

    def recover(service, detected, found):
        if not args.recover:
            from ansible_collections.mttr.recovery.plugins.module_utils.incident_ops import ensure

            with IncidentStore(default_store_path()) as store:
                opened = ensure(
                    store,
                    services=[service],
                    severity="SEV3",
                    summary=f"{service}: detected by mttr watch ({'; '.join(found['failures'])[:200]})",
                    opened_at=detected,
                )
            log(f"{service}: opened {opened['incident']['id']} (detected {detected}); not recovering (--no-recover)")
            return
        contained = contain(catalog, listing, watcher, service, detected) if args.contain else None
        options = SimpleNamespace(
            service=service,
            failure_mode=None,
            strategy=None,
            incident=contained,
            inventory=source,
            check=False,
            from_start=False,
            extra_vars=[],
            detected_at=detected,
            listing=listing,
        )
        try:
            code = recover_cli.run(options, console)
        except Exception as exc:
            message, _code = recover_cli.main_errors(exc)
            log(f"{service}: not recovered: {message}")
            return
        log(f"{service}: recovery {'validated, incident resolved' if code == 0 else f'ended with exit code {code}'}")
        if code == 130:
            raise KeyboardInterrupt

    watcher = Watcher(catalog, hosts, services, args, recover)
    events = queue.Queue()
    if args.listen:
        listen(args.listen, os.environ.get(args.token_env) or None, source, events)
        log(
            f"taking Alertmanager webhooks on {args.listen}" + ("" if os.environ.get(args.token_env) else " (no token)")
        )
    log(
        f"watching {', '.join(services)} ({len(watcher.probes)} probes, {len(watcher.checks)} integrity checks) every "
        f"{args.interval:g} s; acting after {args.failures} failed round(s)"
        + ("" if args.recover else " (--no-recover: incidents only)")
    )
    # Ctrl-C and a service manager's stop end the watch between rounds (SIGINT may arrive ignored from a parent)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rounds = 0
    try:
        while True:
            started = time.monotonic()
            watcher.round()
            rounds += 1
            if args.rounds and rounds >= args.rounds:
                break
            while True:  # until the next round, taking alerts as they come
                left = args.interval - (time.monotonic() - started)
                try:
                    kind, payload = events.get(timeout=max(0.0, left)) if left > 0 else events.get_nowait()
                except queue.Empty:
                    break
                if kind == "error":
                    raise WatchError(payload)
                watcher.alert(payload)
    except KeyboardInterrupt:
        log("stopped (Ctrl-C or SIGTERM)")
        return 0
    log(f"stopped after {rounds} rounds")
    return 0
