"""The lab as a whole: bring it up, report its health, break it on purpose, take it down."""

from __future__ import annotations

import json
import shutil
import stat
import sys
import time
from collections.abc import Callable

import psycopg

from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntimeError

from . import config as labconfig
from .config import NODES, PORT_NAMES, LabConfig, find_haproxy, port_in_use
from .postgres import PostgresNode
from .process import LabError, wait_for
from .services import App, HAProxy, ObjectStore

SCENARIOS = {
    "primary-down": "stop the PostgreSQL primary (immediate shutdown, as a crash would)",
    "bad-release": "deploy a new app release whose /health fails, and switch to it",
    "data-loss": "drop the orders table on the primary (the drop replicates to the standby)",
    "app-crash": "kill the app process with SIGKILL",
}

Say = Callable[[str], None]
SEED_ROWS = 1000


class Lab:
    def __init__(self, cfg: LabConfig):
        self.cfg = cfg
        self.nodes = {name: PostgresNode(cfg, name) for name in NODES}
        self.objstore = ObjectStore(cfg)
        self.app = App(cfg)
        self.haproxy = HAProxy(cfg)

    @classmethod
    def open(cls, home=None) -> Lab:
        return cls(labconfig.load(home))

    def tracked(self):
        yield from (node.tracked for node in self.nodes.values())
        yield from (self.objstore.tracked, self.app.tracked, self.haproxy.tracked)
        yield from self.app.replacements()

    # ------------------------------------------------------------------ roles
    def primary(self) -> PostgresNode | None:
        """The running node that is not in recovery (the lab records it as it changes)."""
        for node in self.nodes.values():
            if node.pid() and node.in_recovery() is False:
                return node
        return None

    def recorded_primary(self) -> PostgresNode:
        return self.nodes[self.cfg.state["primary"]]

    def standbys(self) -> list[PostgresNode]:
        primary = self.cfg.state["primary"]
        return [node for name, node in self.nodes.items() if name != primary]

    # ------------------------------------------------------------------ up
    def check_ports(self) -> None:
        owners = {
            "pg1": self.nodes["pg1"].tracked,
            "pg2": self.nodes["pg2"].tracked,
            "lb_db": self.haproxy.tracked,
            "lb_http": self.haproxy.tracked,
            "app": self.app.tracked,
            "s3": self.objstore.tracked,
        }
        for name, port in self.cfg.ports.items():
            if owners[name].pid() is None and port_in_use(port):
                raise LabError(
                    f"port {port} on 127.0.0.1 ({PORT_NAMES[name]}) is already in use by another program: "
                    f"choose other ports with 'mttr lab up --port-base N' (or MTTR_LAB_PORT_BASE) and a new --home"
                )

    def check_traversable(self) -> None:
        """The PostgreSQL user must reach the home; say so before initdb fails obscurely."""
        user = self.cfg.run_as
        if not user:
            return
        path = self.cfg.home
        for directory in [path, *path.parents]:
            if not directory.exists():
                continue
            mode = directory.stat()
            if not mode.st_mode & stat.S_IXOTH and not (mode.st_mode & stat.S_IXUSR and directory.owner() == user):
                raise LabError(
                    f"PostgreSQL runs as '{user}' and cannot enter {directory} (mode {oct(mode.st_mode & 0o777)}): "
                    "put the lab home (--home / MTTR_HOME) under a directory it can traverse, such as /var/lib/mttr"
                )

    def up(self, say: Say) -> None:
        for tracked in self.tracked():
            line = tracked.clean()
            if line:
                say(line)
        find_haproxy()
        self.check_traversable()
        self.check_ports()
        for sub in ("run", "log"):
            self.cfg.path(sub).mkdir(parents=True, exist_ok=True)
        self.cfg.save()

        primary = self.recorded_primary()
        if not primary.initialized():
            say(f"Initialising PostgreSQL {primary.name} (primary) on 127.0.0.1:{primary.port}")
            primary.initdb()
        if primary.pid() is None:
            primary.start()
            say(f"Started PostgreSQL {primary.name} on 127.0.0.1:{primary.port}")
        seeded = self.cfg.path("pg", ".seeded")
        if not seeded.exists():
            # Seed once (the marker survives restarts): a later 'up' must never paper over a
            # data-loss scenario with fresh rows.
            primary.seed(SEED_ROWS)
            seeded.touch()
            say(f"Seeded database '{self.cfg.state['db']['name']}' with {SEED_ROWS} orders")
        for standby in self.standbys():
            if not standby.initialized():
                if primary.in_recovery() is not False:
                    raise LabError(f"cannot build standby {standby.name}: {primary.name} is not a running primary")
                say(f"Building standby {standby.name} from {primary.name} (pg_basebackup)")
                standby.base_backup_from(primary)
            if standby.pid() is None:
                standby.start()
                say(f"Started PostgreSQL {standby.name} on 127.0.0.1:{standby.port}")
        for node in self.nodes.values():
            if node.pid() is not None and node.reconfigure():
                say(f"PostgreSQL {node.name}: replication is now {self.cfg.state.get('replication', 'async')}")

        if self.objstore.tracked.pid() is None:
            self.objstore.start()
            say(f"Started the S3 endpoint (moto) at {self.cfg.state['s3']['endpoint_url']}")
        self.objstore.ensure_bucket()

        if not self.app.versions():
            release = self.app.deploy(self.app.next_version(), note="initial release")
            say(f"Deployed app release {release.name}")
        self.app.write_shared_config()
        if self.app.tracked.pid() is None:
            self.app.start()
            say(f"Started the app ({self.app.current_version()}) on {self.cfg.state['app']['url']}")

        if self.haproxy.tracked.pid() is None:
            active = self.primary() or primary
            self.haproxy.start(active.name)
            say(
                f"Started HAProxy: writes on 127.0.0.1:{self.cfg.ports['lb_db']} -> {active.name}, "
                f"web on {self.cfg.state['app']['public_url']}"
            )
        self.settle()

    def settle(self, timeout: float = 15) -> bool:
        """Wait until what can be healthy is seen healthy: standbys streaming, HAProxy's checks passing.

        Only conditions that can come true are awaited (a bad release stays unhealthy), and a
        timeout is not an error: ``status`` shows what is still settling.
        """
        checks = []
        primary = self.primary()
        if primary is not None:
            checks.append(lambda: self._lb_state(self.cfg.state["lb"]["db_backend"], primary.name).startswith("UP"))
            for node in self.nodes.values():
                if node is not primary and node.pid():
                    checks.append(lambda n=node: _safe(lambda: n.replication().get("receiver")) == "streaming")
        if self.app.health()[0] == 200:
            checks.append(lambda: self.app.health(via_lb=True)[0] == 200)
        return wait_for(lambda: all(check() for check in checks), timeout, interval=0.1)

    def _lb_state(self, backend: str, server: str) -> str:
        try:
            return self.haproxy.runtime.server_status(backend).get(server, "")
        except HAProxyRuntimeError:
            return ""

    # ------------------------------------------------------------------ status
    def status(self) -> list[dict]:
        rows = []
        lb_db: dict[str, str] = {}
        lb_app: dict[str, str] = {}
        if self.haproxy.tracked.pid():
            try:
                lb_db = self.haproxy.runtime.server_status(self.cfg.state["lb"]["db_backend"])
                lb_app = self.haproxy.runtime.server_status(self.cfg.state["lb"]["app_backend"])
            except HAProxyRuntimeError:
                pass
        for name, node in self.nodes.items():
            endpoint = f"127.0.0.1:{node.port}"
            pid = node.pid()
            if pid is None:
                rows.append(_row(f"postgres {name}", "-", endpoint, None, "down", "not running"))
                continue
            try:
                repl = node.replication()
            except psycopg.Error as exc:
                rows.append(_row(f"postgres {name}", "?", endpoint, pid, "down", str(exc).strip().splitlines()[0]))
                continue
            lb = lb_db.get(name, "-")
            if repl["role"] == "primary":
                streaming = [s for s in repl["standbys"] if s["state"] == "streaming"]
                detail = f"accepting writes; {len(streaming)} standby streaming; lb {lb}"
                rows.append(_row(f"postgres {name}", "primary", endpoint, pid, "up", detail))
            else:
                # streaming from itself receives nothing: the self-loop a bad rejoin can leave
                ok = repl["receiver"] == "streaming" and repl["upstream_port"] != node.port
                detail = (
                    f"{repl['receiver'] or 'not receiving'} from :{repl['upstream_port'] or '-'}"
                    f"{' (itself)' if repl['upstream_port'] == node.port else ''}, "
                    f"replay lag {repl['replay_lag_bytes']} B; lb {lb}"
                )
                rows.append(_row(f"postgres {name}", "standby", endpoint, pid, "up" if ok else "degraded", detail))

        pid = self.haproxy.tracked.pid()
        if pid is None:
            rows.append(_row("haproxy", "lb", f"127.0.0.1:{self.cfg.ports['lb_db']}", None, "down", "not running"))
        else:
            writes = [n for n, s in lb_db.items() if s.startswith("UP")]
            # A replacement (the replace role) may have taken app1's place in the app backend.
            web = ", ".join(f"{name} {status}" for name, status in lb_app.items()) or "?"
            state = "up" if writes and any(s.startswith("UP") for s in lb_app.values()) else "degraded"
            detail = (
                f"writes -> {', '.join(writes) or 'nowhere'}; web {web}; "
                f"db :{self.cfg.ports['lb_db']} web :{self.cfg.ports['lb_http']}"
            )
            rows.append(_row("haproxy", "lb", f"127.0.0.1:{self.cfg.ports['lb_db']}", pid, state, detail))

        pid = self.app.tracked.pid() or next(filter(None, (t.pid() for t in self.app.replacements())), None)
        version = self.app.current_version() or "-"
        if pid is None:
            rows.append(_row("app", version, self.cfg.state["app"]["url"], None, "down", "not running"))
        else:
            code, body = self.app.health(via_lb=True)
            state = "up" if code == 200 else "down"
            detail = f"/health via haproxy: {code or 'no answer'}"
            if isinstance(body, dict):
                detail += f" ({body.get('error') or str(body.get('orders', '?')) + ' orders'})"
            rows.append(_row("app", version, self.cfg.state["app"]["public_url"], pid, state, detail))

        pid = self.objstore.tracked.pid()
        endpoint = self.cfg.state["s3"]["endpoint_url"]
        if pid is None:
            rows.append(_row("objstore", "s3", endpoint, None, "down", "not running"))
        else:
            try:
                buckets = self.objstore.buckets()
                ok = self.cfg.state["s3"]["bucket"] in buckets
                rows.append(
                    _row(
                        "objstore",
                        "s3",
                        endpoint,
                        pid,
                        "up" if ok else "degraded",
                        f"buckets: {', '.join(buckets) or 'none'}",
                    )
                )
            except Exception as exc:
                rows.append(_row("objstore", "s3", endpoint, pid, "down", str(exc).splitlines()[0]))
        return rows

    # ------------------------------------------------------------------ break
    def break_(self, scenario: str) -> str:
        if scenario not in SCENARIOS:
            raise LabError(f"unknown scenario '{scenario}': choose one of {', '.join(SCENARIOS)}")
        detail = getattr(self, "_break_" + scenario.replace("-", "_"))()
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "scenario": scenario, "detail": detail}
        with self.cfg.path("breaks.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        return detail

    def _break_primary_down(self) -> str:
        primary = self.primary()
        if primary is None:
            raise LabError("no running primary to stop: check 'mttr lab status' (or 'mttr lab up' first)")
        pid = primary.stop(mode="immediate")
        return (
            f"stopped the PostgreSQL primary {primary.name} (pid {pid}, 127.0.0.1:{primary.port}) "
            f"with an immediate shutdown: writes through HAProxy :{self.cfg.ports['lb_db']} now fail"
        )

    def _break_bad_release(self) -> str:
        if self.app.tracked.pid() is None:
            raise LabError("the app is not running: start the lab with 'mttr lab up' first")
        previous = self.app.current_version()
        version = self.app.next_version()
        bad_db = self.cfg.state["db"]["name"] + "_v2"
        self.app.deploy(
            version,
            overrides={"db": {"dbname": bad_db}},
            note=f"bad release: points at database {bad_db}, which does not exist",
        )
        self.app.tracked.terminate()
        self.app.start()
        return (
            f"deployed app release {version} (was {previous}) and restarted the app: it points at the missing "
            f"database '{bad_db}', so /health answers 503"
        )

    def _break_data_loss(self) -> str:
        primary = self.primary()
        if primary is None:
            raise LabError("no running primary: the data-loss scenario needs one ('mttr lab up' first)")
        with primary.connect(self.cfg.state["db"]["name"]) as conn:
            if not conn.execute("SELECT to_regclass('public.orders')").fetchone()[0]:
                raise LabError("the orders table is already gone: restore it before breaking it again")
            rows = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
            conn.execute("DROP TABLE orders")
        return (
            f"dropped table orders ({rows} rows) in database '{self.cfg.state['db']['name']}' on "
            f"{primary.name}; the drop replicated to the standby"
        )

    def _break_app_crash(self) -> str:
        pid = self.app.tracked.kill()
        if pid is None:
            raise LabError("the app is not running: nothing to crash ('mttr lab up' first)")
        return f"killed the app process (pid {pid}) with SIGKILL: {self.cfg.state['app']['public_url']} now answers 503"

    # ------------------------------------------------------------------ restart / down
    def restart(self, component: str, say: Say) -> None:
        if component != "app":
            raise LabError(f"unknown component '{component}': only 'app' can be restarted this way")
        pid = self.app.tracked.terminate()
        self.app.start()
        say(f"Restarted the app ({self.app.current_version()}){f', was pid {pid}' if pid else ''}")

    def down(self, say: Say) -> int:
        """Stop every process the lab started; return how many were stopped."""
        stopped = 0
        for label, tracked in (
            ("HAProxy", self.haproxy.tracked),
            ("the app", self.app.tracked),
            *((f"the app's replacement {t.name.removeprefix('lab app ')}", t) for t in self.app.replacements()),
            ("the S3 endpoint", self.objstore.tracked),
        ):
            pid = tracked.terminate()
            if pid:
                stopped += 1
                say(f"Stopped {label} (pid {pid})")
        for node in reversed(list(self.nodes.values())):
            pid = node.stop()
            if pid:
                stopped += 1
                say(f"Stopped PostgreSQL {node.name} (pid {pid})")
        for tracked in self.tracked():
            line = tracked.clean()
            if line:
                say(line)
        return stopped

    def purge(self) -> None:
        """Remove what the lab created under its home (only its own entries)."""
        for entry in ("pg", "run", "log", "app", "haproxy", "objstore", "breaks.jsonl", "lab.json"):
            path = self.cfg.path(entry)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def _safe(func):
    try:
        return func()
    except psycopg.Error:
        return None


def _row(component, role, endpoint, pid, state, detail) -> dict:
    return {"component": component, "role": role, "endpoint": endpoint, "pid": pid, "state": state, "detail": detail}


def open_or_create(home, port_base, python: str | None = None, replication: str | None = None) -> Lab:
    """Open the lab under ``home``, creating its configuration on first use.

    ``replication`` (``async`` or ``sync``) is kept in the lab's state; None keeps what it has.
    """
    lab = _open_or_create(home, port_base, python)
    if replication is not None and lab.cfg.state.get("replication", "async") != replication:
        lab.cfg.state["replication"] = replication
        lab.cfg.save()
    return lab


def _open_or_create(home, port_base, python: str | None = None) -> Lab:
    if labconfig.exists(home):
        cfg = labconfig.load(home)
        if port_base is not None and labconfig.port_base_from(port_base) != cfg.state["port_base"]:
            raise LabError(
                f"the lab under {cfg.home} was created with port base {cfg.state['port_base']}: drop --port-base, "
                "or remove it with 'mttr lab down --purge' first, or use another --home"
            )
        return Lab(cfg)
    home_path = labconfig.resolve_home(home)
    home_path.mkdir(parents=True, exist_ok=True, mode=0o755)
    return Lab(labconfig.create(home_path, port_base, python or sys.executable))


__all__ = ["SCENARIOS", "Lab", "LabError", "open_or_create"]
