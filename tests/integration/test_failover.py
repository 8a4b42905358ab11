"""Failover against the real lab: fencing, promotion, HAProxy switch, split brain, lag, idempotence."""

from __future__ import annotations

import psycopg
import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.failover import (
    FailoverError,
    HAProxySwitch,
    PgNode,
    PostgresFailover,
)
from conftest import REPO, run_playbook, task_result

pytestmark = pytest.mark.integration

FAILOVER = REPO / "playbooks" / "failover.yml"
DB_TASK = "Fence the old primary, promote the standby, prove a write"


def connect(state, port, dbname="orders"):
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        dbname=dbname,
        user=state["db"]["superuser"],
        password=state["db"]["superuser_password"],
        autocommit=True,
        connect_timeout=3,
    )


def write_through_lb(state):
    """Insert through HAProxy's write endpoint; return the port of the server that took it."""
    with connect(state, state["ports"]["lb_db"]) as conn:
        conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('failover-test', 1)")
        return conn.execute("SELECT inet_server_port()").fetchone()[0]


def node(lab, name):
    state = lab.cfg.state
    return PgNode(
        name,
        "127.0.0.1",
        state["nodes"][name]["port"],
        state["db"]["superuser"],
        state["db"]["superuser_password"],
        data_dir=state["nodes"][name]["data"],
    )


def engine(lab, old, new, run, **kwargs):
    return PostgresFailover(
        node(lab, old), node(lab, new), run=run, pg_bin=lab.cfg.state["pg_bin"], os_user=lab.cfg.run_as, **kwargs
    )


def run_command(argv, env):
    import os
    import subprocess

    result = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **(env or {})), check=False)
    return result.returncode, result.stdout, result.stderr


def test_primary_down_failover_playbook(fresh_lab, tmp_path):
    lab = fresh_lab.lab
    state = lab.cfg.state
    fresh_lab.mttr("break", "primary-down")

    check = run_playbook(tmp_path / "check", fresh_lab.home, FAILOVER, ident="check", cmdline="--check")
    assert task_result(check, DB_TASK)["changed"] is True
    assert lab.nodes["pg2"].in_recovery() is True, "check mode promoted the standby"

    runner = run_playbook(tmp_path / "run", fresh_lab.home, FAILOVER, ident="run")
    assert runner.status == "successful", runner.stdout.read()
    result = task_result(runner, DB_TASK)
    assert result["previous_primary"] == "pg1" and result["new_primary"] == "pg2"
    assert result["fence"]["pending"] is False
    assert result["timings"]["promote_to_first_write_s"] < 30
    assert lab.nodes["pg2"].in_recovery() is False
    assert write_through_lb(state) == state["ports"]["pg2"]
    assert (lab.nodes["pg1"].data / "standby.signal").exists()

    again = run_playbook(tmp_path / "again", fresh_lab.home, FAILOVER, ident="again")
    assert again.status == "successful", again.stdout.read()
    assert "no failover needed" in again.stdout.read()

    # the old primary comes back as a read-only standby of the new one
    fresh_lab.up()
    assert lab.nodes["pg1"].in_recovery() is True
    with connect(state, state["ports"]["pg1"]) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('split-brain', 1)")

    # and the rejoin path makes it a streaming standby again: full redundancy
    rejoin = run_playbook(tmp_path / "rejoin", fresh_lab.home, FAILOVER, {"failover_rejoin": True}, ident="rejoin")
    assert rejoin.status == "successful", rejoin.stdout.read()
    assert lab.nodes["pg1"].replication()["receiver"] == "streaming"
    assert lab.nodes["pg2"].in_recovery() is False


def test_split_brain_never_happens_over_repeated_failovers(fresh_lab):
    lab = fresh_lab.lab
    state = lab.cfg.state
    primary, standby = "pg1", "pg2"
    for _round in range(10):
        fresh_lab.mttr("break", "primary-down")
        result = engine(lab, primary, standby, run_command).failover()
        assert result["changed"] and not result["fence"]["pending"]
        HAProxySwitch(state["lb"]["admin_socket"], state["lb"]["db_backend"], primary, standby).switch()
        lab.nodes[primary].start()  # the old primary starts again, as an init system or a person might
        assert lab.nodes[primary].in_recovery() is True, f"{primary} came back writable"
        with (
            connect(state, state["nodes"][primary]["port"]) as conn,
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        ):
            conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('split-brain', 1)")
        assert write_through_lb(state) == state["nodes"][standby]["port"]
        primary, standby = standby, primary


def test_planned_switchover_fences_the_live_primary(fresh_lab):
    lab = fresh_lab.lab
    state = lab.cfg.state
    plan = engine(lab, "pg1", "pg2", run_command).failover(check_mode=True)
    assert plan["changed"] and plan["old_reachable"] is True
    assert lab.nodes["pg2"].in_recovery() is True

    result = engine(lab, "pg1", "pg2", run_command).failover()
    assert "made read-only and its sessions terminated" in result["fence"]["actions"]
    assert "stopped" in result["fence"]["actions"]
    assert lab.nodes["pg1"].pid() is None
    assert lab.nodes["pg2"].in_recovery() is False
    switch = HAProxySwitch(state["lb"]["admin_socket"], state["lb"]["db_backend"], "pg1", "pg2")
    assert switch.switch()["changed"] is True
    assert switch.switch()["changed"] is False
    assert write_through_lb(state) == state["ports"]["pg2"]
    again = engine(lab, "pg1", "pg2", run_command).failover()
    assert again["changed"] is False


def test_lagging_standby_is_refused_unless_forced(fresh_lab):
    lab = fresh_lab.lab
    state = lab.cfg.state
    with connect(state, state["ports"]["pg2"], "postgres") as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
    with connect(state, state["ports"]["pg1"]) as primary:
        primary.execute("INSERT INTO orders (customer, amount_cents) SELECT 'lag', g FROM generate_series(1, 20000) g")
    with pytest.raises(FailoverError, match="bytes behind"):
        engine(lab, "pg1", "pg2", run_command, max_lag_bytes=1024).failover()
    assert lab.nodes["pg2"].in_recovery() is True and lab.nodes["pg1"].in_recovery() is False
    with connect(state, state["ports"]["pg2"], "postgres") as standby:
        standby.execute("SELECT pg_wal_replay_resume()")
    fresh_lab.mttr("break", "primary-down")
    result = engine(lab, "pg1", "pg2", run_command, max_lag_bytes=1024, force=True).failover()
    assert result["changed"] and lab.nodes["pg2"].in_recovery() is False
