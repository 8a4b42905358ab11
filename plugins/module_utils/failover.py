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
  the node before it can return (the role does it on the old node's host).
"""

from __future__ import annotations

import os
import time

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

    def conninfo(self):
        parts = [f"host={self.params['host']}", f"port={self.params['port']}"]
        if self.params.get("user"):
            parts.append(f"user={self.params['user']}")
        if self.params.get("password"):
            parts.append(f"password={self.params['password']}")
        parts.append(f"application_name={self.name}")
        return " ".join(parts)


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
    def assess(self):
        new_state = self.new.probe()
        old_state = self.old.probe()
        if not new_state["reachable"]:
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
        lag = new_state["lag_bytes"]
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

    def write_standby_signal(self):
        data = self.old.data_dir
        signal = os.path.join(data, "standby.signal")
        with open(signal, "w"):
            pass
        conf = os.path.join(data, FENCE_CONF)
        with open(conf, "w") as handle:
            handle.write("# Written by mttr.recovery.failover: this node was fenced; it follows the new primary.\n")
            handle.write(f"primary_conninfo = '{self.new.conninfo()}'\n")
            handle.write("recovery_target_timeline = 'latest'\n")
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

    def promote(self):
        # No configuration reload before promoting: a reload puts a standby whose primary is gone into
        # its WAL-retry sleep and delays the promotion by wal_retrieve_retry_interval (measured).
        with self.new.connect() as conn:
            ok = conn.execute("SELECT pg_promote(true, %s)", (self.promote_timeout,)).fetchone()[0]
        if not ok:
            raise FailoverError(f"{self.new.name} did not finish promotion within {self.promote_timeout} s")
        with self.new.connect() as conn:
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
    def failover(self, check_mode=False):
        started = time.monotonic()
        state = self.assess()
        plan = {"previous_primary": self.old.name, "new_primary": self.new.name}
        if state["done"]:
            return dict(
                plan,
                changed=False,
                previous_primary=None,
                fence=None,
                timings={},
                msg=f"{self.new.name} is already the primary",
            )
        if check_mode:
            return dict(
                plan,
                changed=True,
                fence=None,
                timings={},
                lag_bytes=state["lag_bytes"],
                old_reachable=state["old"].get("reachable", False),
                msg=f"would fence {self.old.name} and promote {self.new.name} (lag {state['lag_bytes']} B)",
            )
        timings = {}
        fence = self.fence(state["old"])
        timings["fence_s"] = round(time.monotonic() - started, 4)
        mark = time.monotonic()
        self.promote()
        timings["promote_s"] = round(time.monotonic() - mark, 4)
        mark = time.monotonic()
        xid = self.prove_write()
        timings["promote_to_first_write_s"] = round(time.monotonic() - mark, 4)
        timings["total_s"] = round(time.monotonic() - started, 4)
        msg = f"promoted {self.new.name}; {self.old.name} fenced: {', '.join(fence['actions']) or 'nothing possible'}"
        if fence["pending"]:
            msg += " (FENCING PENDING: make sure it cannot start as a primary)"
        return dict(
            plan, changed=True, fence=fence, timings=timings, lag_bytes=state["lag_bytes"], first_xid=xid, msg=msg
        )


class HAProxySwitch:
    """Move a backend's traffic from one server to another through the runtime API."""

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

    def switch(self, check_mode=False):
        states = self.states()
        for server in (self.old, self.new):
            if server not in states:
                raise FailoverError(f"backend {self.backend} has no server {server} (has {', '.join(states)})")
        # srv_admin_state bit 0x01: forced maintenance
        old_maint = int(states[self.old]["srv_admin_state"]) & 0x01
        new_maint = int(states[self.new]["srv_admin_state"]) & 0x01
        before = {"active": [s for s, row in states.items() if not int(row["srv_admin_state"]) & 0x01]}
        after = {"active": [s for s in before["active"] if s != self.old] + ([self.new] if new_maint else [])}
        if old_maint and not new_maint:
            return {
                "changed": False,
                "diff": {"before": before, "after": before},
                "msg": f"{self.backend}: {self.new} already takes the traffic, {self.old} is in maintenance",
            }
        if check_mode:
            return {
                "changed": True,
                "diff": {"before": before, "after": after},
                "msg": f"would put {self.backend}/{self.old} in maintenance and {self.backend}/{self.new} ready",
            }
        started = time.monotonic()
        for command in (
            f"set server {self.backend}/{self.new} state ready",
            f"set server {self.backend}/{self.old} state maint",
            f"shutdown sessions server {self.backend}/{self.old}",
        ):
            answer = self.runtime.command(command).strip()
            if answer and "No such" in answer:
                raise FailoverError(f"HAProxy refused '{command}': {answer}")
        switched = time.monotonic() - started
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status.get(self.new, "").startswith("UP") and status.get(self.old, "").startswith("MAINT"):
                break
            time.sleep(0.05)
        else:
            raise FailoverError(
                f"{self.backend}/{self.new} did not come UP within {self.timeout} s (status {self.status()})"
            )
        return {
            "changed": True,
            "diff": {"before": before, "after": after},
            "timings": {"switch_s": round(switched, 4), "until_up_s": round(time.monotonic() - started, 4)},
            "msg": f"{self.backend}: traffic moved from {self.old} to {self.new}",
        }


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
