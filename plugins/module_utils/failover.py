# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover engines: PostgreSQL (fence, promote, prove a write), HAProxy (runtime API), Route 53.

PostgreSQL fencing, in order of strength, all recorded in the result:

* the old primary answers: it is made read-only at once (``ALTER SYSTEM SET
  default_transaction_read_only`` + reload, client sessions terminated), so nothing more is
  written to it while the standby is promoted;
* its data directory is reachable: ``standby.signal`` and a ``primary_conninfo`` pointing at the
  new primary are written, so if anything starts it again it comes back as a read-only standby,
  never as a second primary; then it is stopped (``pg_ctl stop -m fast``);
* neither: promotion still goes ahead and the result says ``fence.pending`` so the caller fences
  the node before it can return (the role does it on the old node's host, ``fence_data_dir``).

``failover_cluster`` does a whole failover in one call, because every Ansible task costs ~0.4 s while
the work takes ~0.2 s: probe every node at once, choose the failed primary and the least-lagging
standby, drain the old primary from every HAProxy backend, fence, promote, prove a write, and send the
backends' traffic to the new primary. Run again, it changes nothing and repairs what a half-finished
run left (a promoted node the load balancer does not point at yet).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime, HAProxyRuntimeError

FENCE_CONF = "mttr_fence.conf"


class FailoverError(Exception):
    """A failover cannot go on safely; the message says what is wrong and what to do."""


def _psycopg():
    try:
        import psycopg
    except ImportError:
        return None
    return psycopg


class PgNode:
    def __init__(self, name, host, port, user=None, password=None, dbname="postgres", data_dir=None):
        self.name = name
        self.params = {"host": host, "port": int(port), "user": user, "password": password, "dbname": dbname}
        self.data_dir = data_dir
        self.psycopg = _psycopg()
        if self.psycopg is None:
            raise FailoverError("the postgres failover needs psycopg on the host (pip install 'psycopg[binary]')")

    def connect(self, timeout=3):
        params = {k: v for k, v in self.params.items() if v not in (None, "")}
        return self.psycopg.connect(autocommit=True, connect_timeout=timeout, **params)

    def probe(self):
        """{'reachable', 'in_recovery', 'lag_bytes', 'lsn', 'read_only'} or reachable False with the error."""
        try:
            with self.connect() as conn:
                in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                if in_recovery:
                    row = conn.execute(
                        "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
                        " COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)"
                    ).fetchone()
                    return {
                        "reachable": True,
                        "in_recovery": True,
                        "lsn": row[1],
                        "receive_lsn": row[0],
                        "lag_bytes": int(row[2]),
                    }
                lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
                read_only = conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
                return {"reachable": True, "in_recovery": False, "lsn": lsn, "read_only": read_only}
        except self.psycopg.Error as exc:
            return {"reachable": False, "error": str(exc).strip().splitlines()[0] if str(exc).strip() else "error"}

    def lsn_gap(self, primary_lsn):
        with self.connect() as conn:
            gap = conn.execute(
                "SELECT pg_wal_lsn_diff(%s::pg_lsn, COALESCE(pg_last_wal_replay_lsn(), %s::pg_lsn))",
                (primary_lsn, primary_lsn),
            ).fetchone()[0]
        return max(0, int(gap))

    def conninfo(self, application_name=None):
        """How a standby reaches this node; ``application_name`` names the standby in pg_stat_replication."""
        parts = [f"host={self.params['host']}", f"port={self.params['port']}"]
        if self.params.get("user"):
            parts.append(f"user={self.params['user']}")
        if self.params.get("password"):
            parts.append(f"password={self.params['password']}")
        parts.append(f"application_name={application_name or self.name}")
        return " ".join(parts)

    def follow(self, primary):
        """Make this standby stream from ``primary`` (primary_conninfo, reloaded). True if it changed."""
        from psycopg import sql

        wanted = primary.conninfo(application_name=self.name)
        with self.connect() as conn:
            if conn.execute("SHOW primary_conninfo").fetchone()[0] == wanted:
                return False
            conn.execute(sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(wanted)))
            conn.execute("SELECT pg_reload_conf()")
        return True


class PostgresFailover:
    def __init__(
        self,
        old,
        new,
        run=None,
        pg_bin=None,
        os_user=None,
        max_lag_bytes=16 * 1024 * 1024,
        force=False,
        promote_timeout=60,
    ):
        self.old = old
        self.new = new
        self.run = run
        self.pg_bin = pg_bin
        self.os_user = os_user
        self.max_lag_bytes = max_lag_bytes
        self.force = force
        self.promote_timeout = promote_timeout

    # ------------------------------------------------------------------ checks
    def assess(self, states=None):
        states = states or {}
        new_state = states.get(self.new.name) or self.new.probe()
        old_state = states.get(self.old.name) or self.old.probe()
        if not new_state.get("reachable"):
            raise FailoverError(
                f"the candidate {self.new.name} is unreachable ({new_state['error']}): there is nothing to fail over to"
            )
        if not new_state["in_recovery"]:
            if old_state.get("reachable") and not old_state.get("in_recovery") and not old_state.get("read_only"):
                raise FailoverError(
                    f"both {self.old.name} and {self.new.name} accept writes: split brain. Fence one by hand "
                    "before anything else"
                )
            return {"done": True, "new": new_state, "old": old_state}
        lag = new_state.get("lag_bytes", 0)
        if old_state.get("reachable") and not old_state.get("in_recovery"):
            lag = max(lag, self.new.lsn_gap(old_state["lsn"]))
        if lag > self.max_lag_bytes and not self.force:
            raise FailoverError(
                f"{self.new.name} is {lag} bytes behind (max_lag_bytes {self.max_lag_bytes}): promoting it would "
                "lose those writes. Wait for it to catch up, or set force to accept the loss"
            )
        return {"done": False, "new": new_state, "old": old_state, "lag_bytes": lag}

    # ------------------------------------------------------------------ steps
    def fence(self, old_state):
        """Make the old primary unable to take writes now and after any restart; say what was done."""
        done = []
        if old_state.get("reachable") and not old_state.get("in_recovery"):
            with self.old.connect() as conn:
                conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
                conn.execute("SELECT pg_reload_conf()")
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
            done.append("made read-only and its sessions terminated")
        if self.old.data_dir and os.path.isdir(self.old.data_dir):
            self.write_standby_signal()
            done.append("standby.signal written (it can only come back as a standby)")
            if old_state.get("reachable") and self.run:
                self.stop_old()
                done.append("stopped")
        pending = not any("standby.signal" in step or step == "stopped" for step in done)
        return {"node": self.old.name, "actions": done, "pending": pending}

    def fence_conf(self):
        return (
            "# Written by mttr.recovery.failover: this node was fenced; it follows the new primary.\n"
            f"primary_conninfo = '{self.new.conninfo()}'\n"
            "recovery_target_timeline = 'latest'\n"
        )

    def fenced(self):
        """True when the old node's data directory already carries this fence."""
        conf = os.path.join(self.old.data_dir, FENCE_CONF)
        if not os.path.exists(os.path.join(self.old.data_dir, "standby.signal")) or not os.path.exists(conf):
            return False
        with open(conf) as handle:
            return handle.read() == self.fence_conf()

    def write_standby_signal(self):
        data = self.old.data_dir
        signal = os.path.join(data, "standby.signal")
        with open(signal, "w"):
            pass
        conf = os.path.join(data, FENCE_CONF)
        with open(conf, "w") as handle:
            handle.write(self.fence_conf())
        main = os.path.join(data, "postgresql.conf")
        with open(main) as handle:
            text = handle.read()
        if f"include_if_exists = '{FENCE_CONF}'" not in text:
            with open(main, "a") as handle:
                handle.write(f"\ninclude_if_exists = '{FENCE_CONF}'\n")
        if self.os_user:
            import shutil

            for path in (signal, conf):
                shutil.chown(path, self.os_user, self.os_user)
                os.chmod(path, 0o600)

    def stop_old(self):
        pg_ctl = os.path.join(self.pg_bin, "pg_ctl") if self.pg_bin else "pg_ctl"
        argv = [pg_ctl, "-D", self.old.data_dir, "-m", "fast", "-w", "-t", "30", "stop"]
        if self.os_user and os.geteuid() == 0:
            argv = ["runuser", "-u", self.os_user, "--", *argv]
        rc, out, err = self.run(argv, None)
        if rc != 0 and "is not running" not in (err + out) and "No such process" not in (err + out):
            raise FailoverError(f"stopping {self.old.name} failed: {(err or out).strip()}")

    def promote(self, poll=0.01, kick_every=0.1):
        """Promote the candidate and return once it has left recovery.

        ``pg_promote(false)`` only signals; this polls ``pg_is_in_recovery()``. No reload before the
        signal: a SIGHUP makes a standby whose primary is gone start a WAL receiver attempt, and a
        promotion signalled during that attempt waits out ``wal_retrieve_retry_interval`` (1 s in the lab,
        5 s by default; bench/failover/RESULTS.md). While it is still in recovery, a reload every
        ``kick_every`` seconds wakes the startup process from that sleep, so the wait is bounded by the
        kick interval instead (measured 0.06-0.26 s from request to ready).
        """
        deadline = time.monotonic() + self.promote_timeout
        with self.new.connect() as conn:
            if not conn.execute("SELECT pg_promote(false)").fetchone()[0]:
                raise FailoverError(f"{self.new.name} refused the promotion signal (see its log)")
            kicked = time.monotonic()
            while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                now = time.monotonic()
                if now > deadline:
                    raise FailoverError(
                        f"{self.new.name} did not finish promotion within {self.promote_timeout} s; "
                        "look at its log before retrying"
                    )
                if now - kicked >= kick_every:
                    conn.execute("SELECT pg_reload_conf()")
                    kicked = now
                time.sleep(poll)
            # a node fenced in an earlier failover carries a read-only setting: lift it now
            if conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on":
                conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
                conn.execute("SELECT pg_reload_conf()")

    def prove_write(self, attempts=50):
        """Assign a transaction id: only a writable primary can. Returns the xid."""
        last = None
        for _attempt in range(attempts):
            try:
                with self.new.connect() as conn:
                    return int(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
            except self.new.psycopg.Error as exc:
                last = exc
                time.sleep(0.02)
        raise FailoverError(f"{self.new.name} was promoted but does not take writes: {last}")

    # ------------------------------------------------------------------ whole
    def failover(self, check_mode=False, states=None, switches=(), started=None):
        """Fence the old primary, promote the new one, prove a write; drain and switch ``switches``.

        ``switches`` (HAProxySwitch) are drained of the old primary before it is fenced and sent to the
        new one once it takes writes; when nothing needs promoting they are still made to point at the
        primary. ``states`` are probes already made (``probe_all``); ``started`` when detection began.
        """
        started = time.monotonic() if started is None else started
        state = self.assess(states)
        plan = {"previous_primary": self.old.name, "new_primary": self.new.name, "primary": self.new.name}
        if state["done"]:
            return keep_primary(self.new.name, switches, check_mode, f"{self.new.name} is already the primary")
        if check_mode:
            return dict(
                plan,
                changed=True,
                fence=None,
                timings={},
                lag_bytes=state["lag_bytes"],
                old_reachable=state["old"].get("reachable", False),
                load_balancers=[switch.switch(check_mode=True) for switch in switches],
                msg=f"would fence {self.old.name} and promote {self.new.name} (lag {state['lag_bytes']} B)",
            )
        timings = {}
        mark = time.monotonic()
        for switch in switches:
            switch.drain()
        if switches:
            timings["drain_s"] = round(time.monotonic() - mark, 4)
        mark = time.monotonic()
        fence = self.fence(state["old"])
        timings["fence_s"] = round(time.monotonic() - mark, 4)
        mark = time.monotonic()
        self.promote()
        timings["promote_s"] = round(time.monotonic() - mark, 4)
        timings["detect_to_promote_s"] = round(time.monotonic() - started, 4)
        mark = time.monotonic()
        xid = self.prove_write()
        timings["promote_to_first_write_s"] = round(time.monotonic() - mark, 4)
        mark = time.monotonic()
        balancers = [switch.switch() for switch in switches]
        if switches:
            timings["switch_s"] = round(time.monotonic() - mark, 4)
        timings["total_s"] = round(time.monotonic() - started, 4)
        msg = f"promoted {self.new.name}; {self.old.name} fenced: {', '.join(fence['actions']) or 'nothing possible'}"
        if fence["pending"]:
            msg += " (FENCING PENDING: make sure it cannot start as a primary)"
        msg += "".join(f"; {lb['msg']}" for lb in balancers)
        return dict(
            plan,
            changed=True,
            fence=fence,
            timings=timings,
            lag_bytes=state["lag_bytes"],
            first_xid=xid,
            load_balancers=balancers,
            msg=msg,
        )


def keep_primary(primary, switches, check_mode, msg):
    """Nothing to promote: only make the load balancers point at ``primary``, and say what moved."""
    balancers = [switch.switch(check_mode=check_mode) for switch in switches]
    moved = [lb["msg"] for lb in balancers if lb["changed"]]
    return {
        "changed": bool(moved),
        "previous_primary": None,
        "new_primary": primary,
        "primary": primary,
        "fence": None,
        "timings": {},
        "load_balancers": balancers,
        "msg": "; ".join([msg, *moved]),
    }


def probe_all(nodes):
    """Probe every node at once (an unreachable host costs its connect timeout once, not per node)."""
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        return dict(zip([node.name for node in nodes], pool.map(lambda node: node.probe(), nodes)))


def choose(nodes, states, switchover=False):
    """Pick (old, new) from probed nodes: the failed or fenced primary and the least-lagging standby.

    When a writable primary answers and no switchover is asked for, old is None and new is that primary.
    """
    writable, fenced, down, standbys = [], [], [], []
    for node in nodes:
        state = states[node.name]
        if not state.get("reachable"):
            down.append(node.name)
        elif state.get("in_recovery"):
            standbys.append((state.get("lag_bytes", 0), node.name))
        elif state.get("read_only"):
            fenced.append(node.name)
        else:
            writable.append(node.name)
    if len(writable) > 1:
        raise FailoverError(
            f"{' and '.join(writable)} all accept writes: split brain. Fence all but one by hand before anything else"
        )
    if writable and not switchover:
        return None, writable[0]
    if not standbys:
        reasons = "; ".join(f"{name}: {states[name].get('error', 'no answer')}" for name in down)
        raise FailoverError(f"no standby answers, nothing to promote ({reasons or 'every node is a primary'})")
    old = (writable if switchover else []) + fenced + down
    if not old:
        raise FailoverError(
            f"no primary answers and no node is down among {', '.join(states)}: nothing is known to fence. "
            "Name old and new explicitly"
        )
    return old[0], min(standbys)[1]


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


def repoint_standbys(nodes, states, old, new):
    """Make every other standby follow the new primary; say what was done to each."""
    done = []
    for node in nodes:
        if node.name in (old, new.name) or not states[node.name].get("in_recovery"):
            continue
        try:
            action = "now follows" if node.follow(new) else "already follows"
        except node.psycopg.Error as exc:
            action = f"could not be repointed ({str(exc).strip().splitlines()[0] if str(exc).strip() else 'error'})"
        done.append({"node": node.name, "msg": f"{node.name} {action} {new.name}"})
    return done


def failover_cluster(nodes, balancers=(), switchover=False, repoint=True, **engine_options):
    """The whole failover in one call: probe, choose, drain, fence, promote, prove a write, switch.

    ``nodes`` are PgNode; ``balancers`` (socket path, backend) pairs of HAProxy backends whose servers
    carry the nodes' names; with ``repoint``, the remaining standbys are made to follow the new primary
    (last: they are not on the way to the first write). Returns the engine's result plus every node's
    probe.
    """
    started = time.monotonic()
    check_mode = engine_options.pop("check_mode", False)
    states = probe_all(nodes)
    detect_s = round(time.monotonic() - started, 4)
    old, new = choose(nodes, states, switchover)
    by_name = {node.name: node for node in nodes}
    switches = [HAProxySwitch(socket_path, backend, old, new) for socket_path, backend in balancers]
    if old is None:  # a writable primary answers
        result = keep_primary(new, switches, check_mode, f"no failover needed: {new} is the primary")
    else:
        engine = PostgresFailover(by_name[old], by_name[new], **engine_options)
        result = engine.failover(check_mode=check_mode, states=states, switches=switches, started=started)
        if repoint and result["changed"] and not check_mode:
            mark = time.monotonic()
            result["standbys"] = repoint_standbys(nodes, states, old, by_name[new])
            if result["standbys"]:
                result["msg"] += "".join(f"; {item['msg']}" for item in result["standbys"])
                result["timings"]["repoint_s"] = round(time.monotonic() - mark, 4)
    if result["changed"] and not check_mode:
        result["timings"]["detect_s"] = detect_s
    result["nodes"] = states
    return result


def fence_data_dir(old, new, os_user=None, check_mode=False):
    """Fence a node on its own host: standby.signal and a primary_conninfo to the new primary."""
    if not old.data_dir or not os.path.isdir(old.data_dir):
        raise FailoverError(f"{old.name}'s data directory {old.data_dir} is not on this host: it cannot be fenced here")
    engine = PostgresFailover(old, new, os_user=os_user)
    if engine.fenced():
        return {"changed": False, "msg": f"{old.name} is already fenced (standby.signal in place)"}
    if check_mode:
        return {"changed": True, "msg": f"would write standby.signal into {old.data_dir}"}
    engine.write_standby_signal()
    return {"changed": True, "msg": f"{old.name} fenced: standby.signal written, it follows {new.name}"}


def rejoin(old, new, run, pg_bin=None, os_user=None, check_mode=False):
    """Turn a fenced old primary into a standby of the new one: stop it, pg_rewind, standby.signal.

    Starting it again is left to the caller (a service manager, or the lab), which knows how the
    node is started; the caller then checks it streams.
    """
    if not old.data_dir or not os.path.isdir(old.data_dir):
        raise FailoverError(f"rejoin needs {old.name}'s data directory on this host (data_dir)")
    state = old.probe()
    if state.get("reachable") and state.get("in_recovery"):
        with old.connect() as conn:
            row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
        if row and row[0] == "streaming":
            return {"changed": False, "msg": f"{old.name} already streams as a standby"}
    new_state = new.probe()
    if not new_state.get("reachable") or new_state.get("in_recovery"):
        raise FailoverError(f"{new.name} is not a reachable primary: nothing to rejoin to")
    if check_mode:
        return {"changed": True, "msg": f"would stop {old.name}, pg_rewind it from {new.name} and make it a standby"}
    failover = PostgresFailover(old, new, run=run, pg_bin=pg_bin, os_user=os_user)
    if state.get("reachable") or os.path.exists(os.path.join(old.data_dir, "postmaster.pid")):
        failover.stop_old()
    tool = os.path.join(pg_bin, "pg_rewind") if pg_bin else "pg_rewind"
    source = " ".join(part for part in new.conninfo().split() if not part.startswith("application_name"))
    argv = [tool, "--target-pgdata", old.data_dir, "--source-server", f"{source} dbname=postgres"]
    if os_user and os.geteuid() == 0:
        argv = ["runuser", "-u", os_user, "--", *argv]
    # pg_rewind finishes crash recovery in single-user mode, which refuses standby.signal: lift it
    # for the rewind only (the node is stopped) and put it back whatever happens.
    signal = os.path.join(old.data_dir, "standby.signal")
    if os.path.exists(signal):
        os.unlink(signal)
    try:
        rc, out, err = run(argv, None)
    finally:
        failover.write_standby_signal()
    if rc != 0:
        lines = [line for line in (err or out).strip().splitlines() if "error" in line.lower()] or [str(rc)]
        raise FailoverError(
            f"pg_rewind of {old.name} from {new.name} failed: {lines[0]}; rebuild it with a fresh base backup instead"
        )
    return {
        "changed": True,
        "rewound": "no rewind required" not in (out + err),
        "msg": f"{old.name} was rewound from {new.name} and will start as its standby",
    }


class Route53Switch:
    """Point a DNS record at the secondary target (UPSERT), waiting until Route 53 reports INSYNC."""

    def __init__(self, client, zone_id, record_name, record_type, value, ttl=30, waiter_delay=2):
        self.client = client
        self.zone_id = zone_id
        self.name = record_name if record_name.endswith(".") else record_name + "."
        self.type = record_type
        self.value = value
        self.ttl = ttl
        self.waiter_delay = waiter_delay

    def current(self):
        records = self.client.list_resource_record_sets(
            HostedZoneId=self.zone_id, StartRecordName=self.name, StartRecordType=self.type, MaxItems="1"
        )["ResourceRecordSets"]
        for record in records:
            if record["Name"] == self.name and record["Type"] == self.type:
                return [item["Value"] for item in record.get("ResourceRecords", [])]
        return []

    def switch(self, check_mode=False):
        before = self.current()
        diff = {"before": {"name": self.name, "values": before}, "after": {"name": self.name, "values": [self.value]}}
        if before == [self.value]:
            return {"changed": False, "diff": diff, "msg": f"{self.name} {self.type} already points at {self.value}"}
        if check_mode:
            return {"changed": True, "diff": diff, "msg": f"would point {self.name} {self.type} at {self.value}"}
        started = time.monotonic()
        change = self.client.change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={
                "Comment": "mttr.recovery failover",
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": self.name,
                            "Type": self.type,
                            "TTL": self.ttl,
                            "ResourceRecords": [{"Value": self.value}],
                        },
                    }
                ],
            },
        )["ChangeInfo"]
        self.client.get_waiter("resource_record_sets_changed").wait(
            Id=change["Id"], WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": 60}
        )
        return {
            "changed": True,
            "diff": diff,
            "change_id": change["Id"],
            "timings": {"insync_s": round(time.monotonic() - started, 4)},
            "msg": f"{self.name} {self.type} now points at {self.value} (was {', '.join(before) or 'absent'})",
        }
