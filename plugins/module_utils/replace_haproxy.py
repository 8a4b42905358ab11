# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace engine, HAProxy provider: start a new instance, add it to the backend, remove the dead one.

Everything goes through HAProxy's runtime API (dynamic servers, HAProxy 2.4 or later): nothing is
written to its configuration file, so a reload or restart of HAProxy forgets the added server and
brings back the removed one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime, HAProxyRuntimeError
from ansible_collections.mttr.recovery.plugins.module_utils.probes import HEALTHY, normalize, run_probes
from ansible_collections.mttr.recovery.plugins.module_utils.processes import pid_alive
from ansible_collections.mttr.recovery.plugins.module_utils.replace_common import ReplaceError, wait_until

# srv_admin_state bit 0x01: forced maintenance (set by an operator, the 'disabled' keyword or the runtime API)
FORCED_MAINT = 0x01
# Dynamic servers do not inherit the backend's default-server line: the check settings are given here.
SERVER_OPTIONS = "check inter 1s fall 2 rise 1"


def port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def fill(template: str, name: str, port: int) -> str:
    """``{name}`` and ``{port}`` filled in; any other brace is left as it is (not str.format)."""
    return template.replace("{name}", name).replace("{port}", str(port))


def read_pid(path: str | None) -> int | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline().strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


class HAProxyReplace:
    """Replace the dead servers of one HAProxy backend by new instances of the same program.

    A server is dead when its own health URL (``http://<address>:<port><health_path>``, asked directly,
    not through HAProxy) does not answer 200, unless an operator put it in maintenance; ``dead`` names
    the servers to replace instead. Each dead server gets one replacement: ``start_command`` with
    ``{port}`` (the first port of ``ports`` that no server of the backend uses and nothing listens on)
    and ``{name}`` (the new server's name: the dead one's, numbered on) filled in. The command must
    return once the instance is started (a daemon that detaches); ``pidfile`` (same placeholders) is
    where it writes its pid, read to report it and to stop the instance when it never becomes healthy.
    """

    def __init__(
        self,
        socket_path: str,
        backend: str,
        start_command: list[str],
        ports: list[int],
        run,
        *,
        address: str = "127.0.0.1",
        pidfile: str | None = None,
        health_path: str = "/health",
        dead: list[str] | None = None,
        server_options: str = SERVER_OPTIONS,
        timeout: float = 30,
        probe_timeout: float = 1.0,
    ):
        self.runtime = HAProxyRuntime(socket_path)
        self.backend = backend
        self.start_command = list(start_command)
        self.ports = list(ports)
        self.run = run
        self.address = address
        self.pidfile = pidfile
        self.health_path = "/" + health_path.lstrip("/")
        self.dead = list(dead) if dead is not None else None
        self.server_options = server_options
        self.timeout = timeout
        self.probe_timeout = probe_timeout

    # ------------------------------------------------------------------------- looking

    def servers(self) -> dict[str, dict]:
        """The backend's servers: ``{name: {address, port, maint, status}}`` (status as ``show stat`` says)."""
        try:
            rows = self.runtime.servers_state(self.backend)
            status = self.runtime.server_status(self.backend)
        except HAProxyRuntimeError as exc:
            if "find backend" in str(exc):
                raise ReplaceError(f"HAProxy has no backend {self.backend}") from None
            raise ReplaceError(str(exc)) from None
        if not rows and not status:
            raise ReplaceError(f"HAProxy has no backend {self.backend} (or it has no servers)")
        return {
            row["srv_name"]: {
                "address": row["srv_addr"],
                "port": int(row["srv_port"]),
                "maint": bool(int(row["srv_admin_state"]) & FORCED_MAINT),
                "status": status.get(row["srv_name"], "?"),
            }
            for row in rows
        }

    def url(self, server: dict) -> str:
        return f"http://{server['address']}:{server['port']}{self.health_path}"

    def health(self, servers: dict[str, dict]) -> dict[str, str | None]:
        """``{name: None when its health URL answers 200, else why not}``, all asked at once."""
        specs = normalize(
            [
                {"name": name, "kind": "http", "url": self.url(server), "timeout": self.probe_timeout}
                for name, server in servers.items()
            ]
        )
        results = run_probes(specs)
        return {result["name"]: result["error"] if result["status"] != HEALTHY else None for result in results}

    def find_dead(self, servers: dict[str, dict]) -> tuple[list[str], dict[str, str | None]]:
        if self.dead is not None:
            return [name for name in self.dead if name in servers], {}
        candidates = {name: server for name, server in servers.items() if not server["maint"]}
        health = self.health(candidates)
        return [name for name, error in health.items() if error], health

    def plan(self, servers: dict[str, dict], dead: list[str]) -> list[dict]:
        """One replacement per dead server: its name and port, chosen among what is free."""
        names = set(servers)
        used_ports = {server["port"] for server in servers.values()}
        candidates = [port for port in self.ports if port not in used_ports]
        replacements = []
        for old in dead:
            prefix = re.sub(r"\d+$", "", old) or self.backend
            number = 1
            while f"{prefix}{number}" in names:
                number += 1
            name = f"{prefix}{number}"
            names.add(name)
            while candidates and not port_free(self.address, candidates[0]):
                candidates.pop(0)
            if not candidates:
                raise ReplaceError(
                    f"no free port for a replacement of {self.backend}/{old} among {self.span()}: "
                    "give more ports (every one is used by a server of the backend or by another program)"
                )
            replacements.append({"replaces": old, "name": name, "address": self.address, "port": candidates.pop(0)})
        return replacements

    def span(self) -> str:
        if not self.ports:
            return "no ports"
        return f"{min(self.ports)}-{max(self.ports)}" if len(self.ports) > 2 else ", ".join(map(str, self.ports))

    # ------------------------------------------------------------------------- acting

    def send(self, command: str, expect: str | None = None) -> str:
        try:
            answer = self.runtime.command(command).strip()
        except HAProxyRuntimeError as exc:
            raise ReplaceError(str(exc), changed=True) from None
        if (expect and expect not in answer) or (not expect and answer):
            raise ReplaceError(f"HAProxy refused '{command}': {answer.splitlines()[0] if answer else 'no answer'}")
        return answer

    def start(self, new: dict) -> dict:
        """Run the start command for ``new``; wait until its health URL answers. Returns what was started."""
        argv = [fill(arg, new["name"], new["port"]) for arg in self.start_command]
        pidfile = fill(self.pidfile, new["name"], new["port"]) if self.pidfile else None
        started = {"name": new["name"], "address": new["address"], "port": new["port"], "pid": None, "command": argv}
        rc, out, err = self.run(argv)
        started["pid"] = read_pid(pidfile)
        if rc != 0:
            detail = (err or out).strip().splitlines()
            raise ReplaceError(
                f"the start command for {new['name']} on port {new['port']} failed (rc {rc}): "
                f"{detail[-1] if detail else 'no output'}",
                changed=bool(started["pid"] and pid_alive(started["pid"])),
                result={"started": [started]},
            )
        error = None

        def healthy():
            nonlocal error
            error = self.health({new["name"]: new})[new["name"]]
            return error is None

        if not wait_until(healthy, self.timeout, interval=0.1):
            stopped = self.stop(started["pid"])
            raise ReplaceError(
                f"the replacement {new['name']} did not answer {self.url(new)} within {self.timeout:g} s ({error})"
                + ("; it was stopped" if stopped else ""),
                changed=True,
                result={"started": [started]},
            )
        return started

    @staticmethod
    def stop(pid: int | None) -> bool:
        """Stop an instance this engine started (its pid from its pid file) that will not be used."""
        if not pid or not pid_alive(pid):
            return False
        os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: not pid_alive(pid), 5):
            os.kill(pid, signal.SIGKILL)
        return True

    def add(self, new: dict, started: dict) -> None:
        """Add ``new`` to the backend, enable it and its check, wait until HAProxy reports it UP."""
        server = f"{self.backend}/{new['name']}"
        self.send(f"add server {server} {new['address']}:{new['port']} {self.server_options}".rstrip(), "New server")
        if "check" in self.server_options.split():
            self.send(f"enable health {server}")
        self.send(f"enable server {server}")
        status = {}

        def up():
            nonlocal status
            status = self.servers()
            return status.get(new["name"], {}).get("status", "").startswith(("UP", "no check"))

        if not wait_until(up, self.timeout, interval=0.05):
            self.remove(new["name"])
            stopped = self.stop(started["pid"])
            raise ReplaceError(
                f"HAProxy did not report {server} UP within {self.timeout:g} s "
                f"(status {status.get(new['name'], {}).get('status', 'gone')}); it was removed"
                + (" and its instance stopped" if stopped else ""),
                changed=True,
            )

    def remove(self, name: str) -> None:
        """Drain, disable and delete a server (its open sessions, if any, are shut)."""
        server = f"{self.backend}/{name}"
        self.send(f"set server {server} state drain")
        self.send(f"set server {server} state maint")
        self.send(f"shutdown sessions server {server}")
        self.send(f"del server {server}", "deleted")

    def replace(self, check_mode: bool = False) -> dict:
        servers = self.servers()
        dead, health = self.find_dead(servers)
        before = {name: f"{s['address']}:{s['port']} {s['status']}" for name, s in servers.items()}
        result = {"changed": False, "backend": self.backend, "dead": dead, "started": [], "added": [], "removed": []}
        if not dead:
            healthy = [name for name, error in health.items() if error is None] if health else list(servers)
            result.update(
                diff={"before": {"servers": before}, "after": {"servers": before}},
                msg=f"{self.backend}: no dead server to replace ({', '.join(healthy) or 'none'} healthy)",
            )
            return result
        plan = self.plan(servers, dead)
        if check_mode:
            after = {name: value for name, value in before.items() if name not in dead}
            after.update({new["name"]: f"{new['address']}:{new['port']} UP" for new in plan})
            result.update(
                changed=True,
                plan=plan,
                diff={"before": {"servers": before}, "after": {"servers": after}},
                msg="would "
                + "; ".join(f"replace {self.backend}/{n['replaces']} by {n['name']} on port {n['port']}" for n in plan),
            )
            return result
        started_at = time.monotonic()
        for new in plan:
            try:
                started = self.start(new)
                result["started"].append(started)
                result["changed"] = True
                self.add(new, started)
                result["added"].append(new["name"])
                self.remove(new["replaces"])
                result["removed"].append(new["replaces"])
            except ReplaceError as exc:
                done = {key: result[key] + exc.result.get(key, []) for key in ("started", "added", "removed")}
                raise ReplaceError(str(exc), changed=result["changed"] or exc.changed, result=done) from None
        after = {name: f"{s['address']}:{s['port']} {s['status']}" for name, s in self.servers().items()}
        result.update(
            diff={"before": {"servers": before}, "after": {"servers": after}},
            timings={"replace_s": round(time.monotonic() - started_at, 3)},
            msg="; ".join(
                f"replaced {self.backend}/{n['replaces']} by {n['name']} on port {n['port']} (pid {s['pid'] or '?'})"
                for n, s in zip(plan, result["started"])
            ),
        )
        return result
