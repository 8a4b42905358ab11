# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy failover engine: move a backend's traffic to one server through the runtime API."""

from __future__ import annotations

import time

from ansible_collections.mttr.recovery.plugins.module_utils.failover_common import FailoverError
from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime, HAProxyRuntimeError


class HAProxySwitch:
    """Move a backend's traffic to one server through the runtime API.

    ``old`` is the server taken out; None takes out every other server of the backend.
    """

    def __init__(self, socket_path, backend, old, new, timeout=10):
        self.runtime = HAProxyRuntime(socket_path)
        self.backend = backend
        self.old = old
        self.new = new
        self.timeout = timeout

    def states(self):
        try:
            return {row["srv_name"]: row for row in self.runtime.servers_state(self.backend)}
        except HAProxyRuntimeError as exc:
            raise FailoverError(str(exc)) from None

    def status(self):
        try:
            return self.runtime.server_status(self.backend)
        except HAProxyRuntimeError as exc:
            raise FailoverError(str(exc)) from None

    def _maint(self):
        """{server: in forced maintenance} (srv_admin_state bit 0x01), checking old and new exist."""
        states = self.states()
        for server in (self.old, self.new):
            if server and server not in states:
                raise FailoverError(f"backend {self.backend} has no server {server} (has {', '.join(states)})")
        return {name: bool(int(row["srv_admin_state"]) & 0x01) for name, row in states.items()}

    def _send(self, commands):
        for command in commands:
            try:
                answer = self.runtime.command(command).strip()
            except HAProxyRuntimeError as exc:
                raise FailoverError(str(exc)) from None
            if answer and "No such" in answer:
                raise FailoverError(f"HAProxy refused '{command}': {answer}")

    def _out(self, server):
        return [f"set server {self.backend}/{server} state maint", f"shutdown sessions server {self.backend}/{server}"]

    def drain(self):
        """Take the old server out (maintenance, its sessions shut) before it is fenced; True if it was in."""
        maint = self._maint()
        if not self.old or maint[self.old]:
            return False
        self._send(self._out(self.old))
        return True

    def switch(self, check_mode=False):
        maint = self._maint()
        others = [self.old] if self.old else [name for name in maint if name != self.new]
        before = {"active": [name for name, out in maint.items() if not out]}
        after = {"active": [name for name in before["active"] if name not in others]}
        if maint[self.new]:
            after["active"].append(self.new)
        if not maint[self.new] and all(maint[name] for name in others):
            return {
                "changed": False,
                "backend": self.backend,
                "diff": {"before": before, "after": before},
                "msg": f"{self.backend}: {self.new} already takes the traffic",
            }
        if check_mode:
            return {
                "changed": True,
                "backend": self.backend,
                "diff": {"before": before, "after": after},
                "msg": f"would put {self.backend}/{self.new} ready and {', '.join(others)} in maintenance",
            }
        started = time.monotonic()
        commands = [f"set server {self.backend}/{self.new} state ready"]
        for name in others:
            commands += self._out(name)
        self._send(commands)
        switched = time.monotonic() - started
        deadline = time.monotonic() + self.timeout
        while True:
            status = self.status()
            if status.get(self.new, "").startswith("UP") and all(
                status.get(name, "").startswith("MAINT") for name in others
            ):
                break
            if time.monotonic() > deadline:
                raise FailoverError(
                    f"{self.backend}/{self.new} did not come UP within {self.timeout} s (status {status})"
                )
            time.sleep(0.05)
        return {
            "changed": True,
            "backend": self.backend,
            "diff": {"before": before, "after": after},
            "timings": {"switch_s": round(switched, 4), "until_up_s": round(time.monotonic() - started, 4)},
            "msg": f"{self.backend}: traffic moved from {', '.join(others)} to {self.new}",
        }
