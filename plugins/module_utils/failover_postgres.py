# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL failover engine: fence, promote, prove a write; rejoin the old primary as a standby.

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
the work takes ~0.2 s: probe every node at once, choose the failed primary and the standby holding
the most WAL, drain the old primary from every HAProxy backend, fence, promote, prove a write, and send the
backends' traffic to the new primary. Run again, it changes nothing and repairs what a half-finished
run left (a promoted node the load balancer does not point at yet).
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.mttr.recovery.plugins.module_utils.failover_common import FailoverError, first_line
from ansible_collections.mttr.recovery.plugins.module_utils.failover_haproxy import HAProxySwitch
from ansible_collections.mttr.recovery.plugins.module_utils.pg import connect, connection_params, load_psycopg
from ansible_collections.mttr.recovery.plugins.module_utils.pg_replication import (
    acknowledged_writes_safe,
    application_names,
    configured_setting,
    lsn_int,
    lsn_text,
    parse_sync_names,
    same_endpoint,
    standby_facts,
    wal_end,
)

FENCE_CONF = "mttr_fence.conf"
# what a fence removes from postgresql.auto.conf (see PostgresFailover.write_standby_signal)


AUTO_CONF_OVERRIDES = re.compile(r"^\s*(primary_conninfo\s*=|synchronous_standby_names\s*=\s*''\s*$)")


class PgNode:
    def __init__(self, name, host, port, user=None, password=None, dbname="postgres", data_dir=None):
        self.name = name
        self.params = {"host": host, "port": int(port), "user": user, "password": password, "dbname": dbname}
        self.data_dir = data_dir
        self.psycopg = load_psycopg()
        if self.psycopg is None:
            raise FailoverError("the postgres failover needs psycopg on the host (pip install 'psycopg[binary]')")

    def connect(self, timeout=3):
        return connect(connection_params(**self.params), timeout)

    def probe(self):
        """Role and replication facts, or reachable False with the error.

        A standby: ``held_lsn`` (all the WAL it has, received or replayed), ``receiver`` and its
        upstream. A primary: ``lsn`` (its insert position), ``read_only`` and its synchronous settings.
        """
        try:
            with self.connect() as conn:
                in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                if in_recovery:
                    facts = standby_facts(conn)
                    return dict(facts, reachable=True, in_recovery=True, lsn=facts["replay_lsn"])
                lsn, read_only, sync_names, sync_commit = conn.execute(
                    "SELECT pg_current_wal_insert_lsn()::text, current_setting('default_transaction_read_only'),"
                    " current_setting('synchronous_standby_names'), current_setting('synchronous_commit')"
                ).fetchone()
                return {
                    "reachable": True,
                    "in_recovery": False,
                    "lsn": lsn,
                    "read_only": read_only == "on",
                    "synchronous_standby_names": sync_names,
                    "synchronous_commit": sync_commit,
                }
        except self.psycopg.Error as exc:
            return {"reachable": False, "error": first_line(exc)}

    def streams_from(self, primary):
        """(True, facts) when this standby streams from ``primary`` and ``primary`` lists it as streaming."""
        with self.connect() as conn:
            if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                return False, {"role": "primary"}
            facts = standby_facts(conn)
        if facts["receiver"] != "streaming" or not same_endpoint(
            (facts["upstream_host"], facts["upstream_port"]), (primary.params["host"], primary.params["port"])
        ):
            return False, facts
        with primary.connect() as conn:
            listed = conn.execute(
                "SELECT state FROM pg_stat_replication WHERE application_name = %s", (self.name,)
            ).fetchone()
        facts["listed_by_primary"] = bool(listed and listed[0] == "streaming")
        return facts["listed_by_primary"], facts

    def held_lsn(self):
        with self.connect() as conn:
            return lsn_int(standby_facts(conn)["held_lsn"])

    def application_names(self):
        with self.connect() as conn:
            return application_names(conn, self.name)

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
        catch_up_timeout=10,
        standby_count=1,
    ):
        self.old = old
        self.new = new
        self.run = run
        self.pg_bin = pg_bin
        self.os_user = os_user
        self.max_lag_bytes = max_lag_bytes
        self.force = force
        self.promote_timeout = promote_timeout
        self.catch_up_timeout = catch_up_timeout
        self.standby_count = standby_count

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
        exposure = self.exposure(old_state, new_state)
        if not self.force:
            refuse_exposure(self.old.name, self.new.name, exposure, self.max_lag_bytes)
        return {"done": False, "new": new_state, "old": old_state, "exposure": exposure}

    def old_position(self, old_state, new_state):
        """(the old primary's last WAL position, where it was read, its synchronous settings) - None when unknown.

        In order: it answers (live); its data directory is on this host (the end of its WAL); the
        candidate still streams from it (the end its last message reported). A receiver that is not
        streaming knows nothing of what the primary wrote since.
        """
        if old_state.get("reachable") and not old_state.get("in_recovery"):
            settings = (old_state["synchronous_standby_names"], old_state["synchronous_commit"])
            return lsn_int(old_state["lsn"]), "live", settings
        if self.old.data_dir and os.path.isdir(self.old.data_dir) and self.run:
            end = wal_end(self.old.data_dir, self.run, self.pg_bin, self.os_user)
            settings = tuple(
                configured_setting(self.old.data_dir, name, self.run, self.pg_bin, self.os_user)
                for name in ("synchronous_standby_names", "synchronous_commit")
            )
            if end is not None:
                return end, "wal", None if None in settings else settings
        if new_state.get("receiver") == "streaming" and new_state.get("upstream_end_lsn"):
            return lsn_int(new_state["upstream_end_lsn"]), "receiver", None
        return None, None, None

    def exposure(self, old_state, new_state, primary_lsn=None):
        """What promoting the candidate can lose: the old primary's WAL it never received, and whether
        any of it was acknowledged to a client (see pg_replication)."""
        source, settings = "final", None
        if primary_lsn is None:
            primary_lsn, source, settings = self.old_position(old_state, new_state)
        else:
            settings = (old_state.get("synchronous_standby_names"), old_state.get("synchronous_commit"))
        held = lsn_int(new_state.get("held_lsn"))
        unreceived = None if primary_lsn is None or held is None else max(0, primary_lsn - held)
        if settings is None or settings[0] is None:
            mode, safe = "unknown", False
        else:
            mode = "synchronous" if parse_sync_names(settings[0])[0] else "asynchronous"
            safe = mode == "synchronous" and acknowledged_writes_safe(
                settings[0], settings[1], self.new.application_names(), self.standby_count
            )
        at_risk = False if unreceived == 0 or safe else (None if unreceived is None else True)
        return {
            "replication": mode,
            "primary_lsn": lsn_text(primary_lsn),
            "primary_lsn_source": source if primary_lsn is not None else None,
            "candidate_lsn": lsn_text(held),
            "unreceived_bytes": unreceived,
            "acknowledged_writes_at_risk": at_risk,
            "receiver": new_state.get("receiver"),
        }

    def catch_up(self, old_state, final_lsn, poll=0.02):
        """After fencing a live primary: wait (bounded) until the candidate holds its last WAL, and re-measure."""
        deadline = time.monotonic() + self.catch_up_timeout
        while True:
            held = self.new.held_lsn()
            if (held is not None and held >= final_lsn) or time.monotonic() > deadline:
                return self.exposure(old_state, {"held_lsn": lsn_text(held)}, primary_lsn=final_lsn)
            time.sleep(poll)

    # ------------------------------------------------------------------ steps
    def fence(self, old_state):
        """Make the old primary unable to take writes now and after any restart; say what was done.

        When it answered, ``final_lsn`` is where its WAL ended once nothing more could be written.
        """
        done = []
        final_lsn = None
        if old_state.get("reachable") and not old_state.get("in_recovery"):
            with self.old.connect() as conn:
                conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
                conn.execute("SELECT pg_reload_conf()")
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
                final_lsn = lsn_int(conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])
            done.append("made read-only and its sessions terminated")
        if self.old.data_dir and os.path.isdir(self.old.data_dir):
            self.write_standby_signal()
            done.append("standby.signal written (it can only come back as a standby)")
            if old_state.get("reachable") and self.run:
                self.stop_old()
                done.append("stopped")
                final_lsn = wal_end(self.old.data_dir, self.run, self.pg_bin, self.os_user) or final_lsn
        pending = not any("standby.signal" in step or step == "stopped" for step in done)
        return {"node": self.old.name, "actions": done, "pending": pending, "final_lsn": final_lsn}

    def fence_conf(self):
        return (
            "# Written by mttr.recovery.failover: this node was fenced; it follows the new primary.\n"
            f"primary_conninfo = '{self.new.conninfo(application_name=self.old.name)}'\n"
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
        """standby.signal and the fence's primary_conninfo, which nothing in postgresql.auto.conf overrides.

        postgresql.auto.conf is read last, so a ``primary_conninfo`` there (pg_basebackup -R writes one;
        pg_rewind copies the new primary's, which names the node itself) would win over the fence and
        leave the node streaming from the wrong server, or from itself. The empty
        ``synchronous_standby_names`` a promotion set (``relax_synchronous``) goes too: the configured
        value applies again when this node is promoted.
        """
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
        written = [signal, conf]
        auto = os.path.join(data, "postgresql.auto.conf")
        if os.path.exists(auto):
            with open(auto) as handle:
                lines = handle.readlines()
            kept = [line for line in lines if not AUTO_CONF_OVERRIDES.match(line)]
            if kept != lines:
                with open(auto + ".mttr", "w") as handle:
                    handle.writelines(kept)
                os.chmod(auto + ".mttr", 0o600)
                os.replace(auto + ".mttr", auto)
                written.append(auto)
        if self.os_user:
            import shutil

            for path in written:
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
        """Promote the candidate and return once it has left recovery; the synchronous setting it relaxed.

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
            relaxed = relax_synchronous(conn)
            # a node fenced in an earlier failover carries a read-only setting: lift it now
            if conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on":
                conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
                conn.execute("SELECT pg_reload_conf()")
        return relaxed

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
        raise FailoverError(f"{self.new.name} was promoted but does not take writes: {last}", changed=True)

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
        exposure = state["exposure"]
        if check_mode:
            return dict(
                plan,
                changed=True,
                fence=None,
                timings={},
                exposure=exposure,
                lag_bytes=exposure["unreceived_bytes"],
                old_reachable=state["old"].get("reachable", False),
                load_balancers=[switch.switch(check_mode=True) for switch in switches],
                msg=f"would fence {self.old.name} and promote {self.new.name}; {describe_exposure(exposure)}",
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
        final_lsn = fence.pop("final_lsn")
        if final_lsn is not None and state["old"].get("reachable"):
            mark = time.monotonic()
            exposure = self.catch_up(state["old"], final_lsn)
            timings["catch_up_s"] = round(time.monotonic() - mark, 4)
        mark = time.monotonic()
        relaxed = self.promote()
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
        msg += f"; {describe_exposure(exposure)}"
        if relaxed is not None:
            msg += (
                f"; {self.new.name} runs without a synchronous standby (synchronous_standby_names was "
                f"'{relaxed}') until one rejoins"
            )
        msg += "".join(f"; {lb['msg']}" for lb in balancers)
        result = dict(
            plan,
            changed=True,
            fence=fence,
            timings=timings,
            exposure=exposure,
            lag_bytes=exposure["unreceived_bytes"],
            synchronous_relaxed=relaxed,
            first_xid=xid,
            load_balancers=balancers,
            msg=msg,
        )
        if exposure["acknowledged_writes_at_risk"] is not False:
            result["risk"] = f"failover {self.old.name} -> {self.new.name}: {describe_exposure(exposure)}"
        return result


def refuse_exposure(old, new, exposure, max_lag_bytes):
    """Raise unless promoting ``new`` is known to lose no more than ``max_lag_bytes`` of acknowledged writes."""
    if exposure["acknowledged_writes_at_risk"] is None:
        raise FailoverError(
            f"cannot tell how much of {old}'s WAL {new} never received: {old} does not answer and its data "
            f"directory is not on this host, and replication was not known to be synchronous (the receiver on "
            f"{new} is {exposure['receiver'] or 'not running'}). Bring {old} or its data directory back, or set "
            "force to accept losing whatever it never sent"
        )
    if exposure["acknowledged_writes_at_risk"] and exposure["unreceived_bytes"] > max_lag_bytes:
        raise FailoverError(
            f"{new} never received {exposure['unreceived_bytes']} bytes of {old}'s WAL ({old} reached "
            f"{exposure['primary_lsn']}, {new} holds {exposure['candidate_lsn']}; max_lag_bytes {max_lag_bytes}): "
            f"promoting it loses the commits in them. Bring {old} back so {new} can catch up, or set force to "
            "accept the loss"
        )


def describe_exposure(exposure):
    """One line a person can act on: what this promotion could lose."""
    replication = exposure["replication"]
    if exposure["unreceived_bytes"] == 0:
        return f"no data lost ({replication} replication; the candidate held all WAL up to {exposure['primary_lsn']})"
    if exposure["acknowledged_writes_at_risk"] is False:
        unreceived = exposure["unreceived_bytes"]
        return (
            f"no acknowledged write lost (synchronous replication; {unreceived or 'an unknown number of'} bytes of"
            " WAL never acknowledged to a client not received)"
        )
    if exposure["unreceived_bytes"] is None:
        return f"DATA LOSS UNKNOWN: {replication} replication and the old primary's last position is unknown (forced)"
    return (
        f"DATA LOSS POSSIBLE: {exposure['unreceived_bytes']} bytes of WAL never received ({replication} replication; "
        f"old primary at {exposure['primary_lsn']}, promoted at {exposure['candidate_lsn']})"
    )


def relax_synchronous(conn):
    """A new primary whose standby is gone would block every commit: run asynchronously until a standby
    rejoins (``restore_synchronous``). Returns the value relaxed, or None."""
    value = conn.execute("SHOW synchronous_standby_names").fetchone()[0]
    if not value.strip():
        return None
    conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
    conn.execute("SELECT pg_reload_conf()")
    return value


def restore_synchronous(conn):
    """Undo ``relax_synchronous`` once a standby streams: the configured value applies again. Returns it, or None."""
    rows = conn.execute(
        "SELECT sourcefile, setting FROM pg_file_settings WHERE name = 'synchronous_standby_names' ORDER BY seqno"
    ).fetchall()
    auto = [setting for source, setting in rows if source.endswith("postgresql.auto.conf")]
    configured = [setting for source, setting in rows if not source.endswith("postgresql.auto.conf")]
    if not auto or auto[-1].strip() or not configured or not configured[-1].strip():
        return None
    conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
    conn.execute("SELECT pg_reload_conf()")
    return configured[-1]


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
    """Pick (old, new) from probed nodes: the failed or fenced primary and the standby holding the most WAL.

    When a writable primary answers and no switchover is asked for, old is None and new is that primary.
    """
    writable, fenced, down, standbys = [], [], [], []
    for node in nodes:
        state = states[node.name]
        if not state.get("reachable"):
            down.append(node.name)
        elif state.get("in_recovery"):
            standbys.append((-(lsn_int(state.get("held_lsn")) or 0), node.name))
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
        engine = PostgresFailover(by_name[old], by_name[new], standby_count=len(nodes) - 1, **engine_options)
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


def rejoin(old, new, run, pg_bin=None, os_user=None, check_mode=False, start=None, timeout=60):
    """Make the fenced old primary a standby that streams from the new one, and prove it.

    Already streaming from ``new`` (and listed by it): nothing changes. A standby streaming from
    elsewhere is repointed; otherwise it is stopped, rewound with ``pg_rewind`` from ``new`` (after a
    CHECKPOINT there, so the new timeline is in its control file) and signalled as its standby. With
    ``start`` (an argv), it is started and the call ends only when it streams from ``new``, ``new``
    lists it, and a transaction committed on ``new`` afterwards has been replayed on it. Returns the
    WAL ``pg_rewind`` discarded (what the old primary had that the new one never got).
    """
    if not old.data_dir or not os.path.isdir(old.data_dir):
        raise FailoverError(f"rejoin needs {old.name}'s data directory on this host (data_dir)")
    new_state = new.probe()
    if not new_state.get("reachable") or new_state.get("in_recovery"):
        raise FailoverError(f"{new.name} is not a reachable primary: nothing to rejoin to")
    state = old.probe()
    if state.get("reachable") and state.get("in_recovery"):
        streaming, facts = old.streams_from(new)
        if streaming:
            restored = None if check_mode else _restore_synchronous(new)
            return {
                "changed": restored is not None,
                "upstream": f"{facts['upstream_host']}:{facts['upstream_port']}",
                "msg": f"{old.name} already streams from {new.name}"
                + (f"; synchronous_standby_names '{restored}' restored on {new.name}" if restored else ""),
            }
        if check_mode:
            return {"changed": True, "msg": f"would make {old.name} stream from {new.name} (repoint, else rewind)"}
        old.follow(new)
        proof = prove_standby(old, new, min(timeout, 15), fail=False)
        if proof is not None:
            return finish_rejoin(old, new, proof, f"{old.name} was repointed at {new.name}", discarded=0)
    if check_mode:
        return {"changed": True, "msg": f"would stop {old.name}, pg_rewind it from {new.name} and make it a standby"}
    failover = PostgresFailover(old, new, run=run, pg_bin=pg_bin, os_user=os_user)
    if state.get("reachable") or os.path.exists(os.path.join(old.data_dir, "postmaster.pid")):
        failover.stop_old()
    # pg_rewind reads the new timeline from the source's control file, which the end-of-recovery
    # checkpoint writes after promotion: without it, "no rewind required" and the node cannot follow.
    with new.connect() as conn:
        conn.execute("CHECKPOINT")
    old_end = wal_end(old.data_dir, run, pg_bin, os_user)
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
        rc, out, err = run(argv, {"LC_ALL": "C"})
    finally:
        failover.write_standby_signal()
    if rc != 0:
        lines = [line for line in (err or out).strip().splitlines() if "error" in line.lower()] or [str(rc)]
        raise FailoverError(
            f"pg_rewind of {old.name} from {new.name} failed: {lines[0]}; rebuild it with a fresh base backup instead",
            changed=True,
        )
    diverged = _DIVERGED.search(out + err)
    discarded = None
    if "no rewind required" in (out + err):
        discarded = 0
    elif diverged and old_end is not None:
        discarded = max(0, old_end - lsn_int(diverged.group(1)))
    what = (
        f"{old.name} was rewound from {new.name}"
        + (f" (diverged at {diverged.group(1)})" if diverged else " (no rewind required)")
        + (f", discarding {discarded} bytes of WAL {new.name} never had" if discarded else "")
    )
    if not start:
        return {
            "changed": True,
            "rewound": discarded != 0,
            "discarded_bytes": discarded,
            "proven": False,
            "msg": f"{what}; start it and it streams as {new.name}'s standby",
        }
    rc, out, err = run(list(start), None)
    if rc != 0:
        raise FailoverError(
            f"{what}, but its start command failed (rc {rc}): {first_line(err or out)}; start it by hand",
            changed=True,
        )
    proof = prove_standby(old, new, timeout)
    return finish_rejoin(old, new, proof, what, discarded=discarded)


_DIVERGED = re.compile(r"servers diverged at WAL location ([0-9A-F]+/[0-9A-F]+)")


def finish_rejoin(old, new, proof, what, discarded):
    restored = _restore_synchronous(new)
    msg = f"{what}; it streams from {new.name} ({proof['upstream']}) and replayed a commit made after the rejoin"
    if restored:
        msg += f"; synchronous_standby_names '{restored}' restored on {new.name}"
    result = {
        "changed": True,
        "rewound": bool(discarded),
        "discarded_bytes": discarded,
        "proven": True,
        "upstream": proof["upstream"],
        "proof_xid": proof["xid"],
        "msg": msg,
    }
    if discarded:
        result["risk"] = f"rejoin of {old.name}: pg_rewind discarded {discarded} bytes of WAL {new.name} never had"
    return result


def _restore_synchronous(new):
    with new.connect() as conn:
        return restore_synchronous(conn)


def prove_standby(standby, primary, timeout, fail=True, poll=0.1):
    """Wait until ``standby`` streams from ``primary``, is listed by it, and replays a commit made now.

    Returns {'upstream', 'xid'}; on timeout raises FailoverError (changed: the node was already
    touched) saying what was missing, or returns None when ``fail`` is False.
    """
    deadline = time.monotonic() + timeout
    facts, xid, commit_lsn = {}, None, None
    while True:
        try:
            streaming, facts = standby.streams_from(primary)
            if streaming and xid is None:
                with primary.connect() as conn:
                    xid = conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0]
                    commit_lsn = lsn_int(conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0])
            if streaming and xid is not None and (lsn_int(facts.get("replay_lsn")) or 0) >= commit_lsn:
                return {"upstream": f"{facts['upstream_host']}:{facts['upstream_port']}", "xid": int(xid)}
        except standby.psycopg.Error as exc:
            facts = {"error": first_line(exc)}
        if time.monotonic() > deadline:
            if not fail:
                return None
            if "error" in facts:
                missing = f"it does not answer ({facts['error']})"
            elif facts.get("role") == "primary":
                missing = "it is a primary"
            elif facts.get("receiver") != "streaming":
                missing = f"its WAL receiver is {facts.get('receiver') or 'not running'}"
            elif facts.get("listed_by_primary") is False or "listed_by_primary" not in facts:
                missing = (
                    f"it streams from {facts.get('upstream_host')}:{facts.get('upstream_port')}, "
                    f"not from {primary.name}, or {primary.name} does not list it"
                )
            else:
                missing = f"it has not replayed transaction {xid} from {primary.name}"
            raise FailoverError(
                f"{standby.name} does not replicate from {primary.name} after {timeout} s: {missing}", changed=True
            )
        time.sleep(poll)
