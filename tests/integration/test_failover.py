"""Failover against the real lab: fencing, promotion, HAProxy switch, split brain, lag, idempotence."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.failover_common import FailoverError
from ansible_collections.mttr.recovery.plugins.module_utils.failover_haproxy import HAProxySwitch
from ansible_collections.mttr.recovery.plugins.module_utils.failover_postgres import (
    PgNode,
    PostgresFailover,
    choose,
    failover_cluster,
    fence_data_dir,
    probe_all,
    rejoin,
)
from ansible_collections.mttr.recovery.plugins.module_utils.incident_review import build_report
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from ansible_collections.mttr.recovery.plugins.module_utils.probes import normalize, run_probes
from ansible_collections.mttr.recovery.tests.support.processes import free_port, run_process
from conftest import REPO, run_playbook, task_result
from mttr.lab.cycles import connect, replication_from
from mttr.lab.postgres import PostgresNode

pytestmark = pytest.mark.integration

FAILOVER = REPO / "playbooks" / "failover.yml"
DB_TASK = "Drain, fence, promote, prove a write and switch the load balancers"
REJOIN_TASK = "Rejoin every other node as a standby streaming from the primary"


def write_through_lb(state):
    """Insert through HAProxy's write endpoint; return the port of the server that took it."""
    with connect(state, state["ports"]["lb_db"]) as conn:
        conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('failover-test', 1)")
        return conn.execute("SELECT inet_server_port()").fetchone()[0]


def lb_status(lab):
    return lab.haproxy.runtime.server_status(lab.cfg.state["lb"]["db_backend"])


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


def assert_streams_from(lab, standby, primary, timeout=30):
    """``standby`` streams from ``primary`` (sender port), ``primary`` lists it, and a row written on
    ``primary`` now shows up on ``standby`` (the lab's own check, which the failover cycles use too)."""
    return replication_from(lab.cfg.state, standby, primary, timeout)


def test_primary_down_failover_playbook(fresh_lab, tmp_path):
    lab = fresh_lab.lab
    state = lab.cfg.state
    fresh_lab.mttr("break", "primary-down")

    check = run_playbook(tmp_path / "check", fresh_lab.home, FAILOVER, ident="check", cmdline="--check --diff")
    assert check.status == "successful", check.stdout.read()
    planned = task_result(check, DB_TASK)
    assert planned["changed"] is True and planned["new_primary"] == "pg2"
    assert planned["diff"]["after"] == [{"active": ["pg2"]}]
    assert lab.nodes["pg2"].in_recovery() is True, "check mode promoted the standby"
    assert not (lab.nodes["pg1"].data / "standby.signal").exists(), "check mode fenced the old primary"
    assert lb_status(lab)["pg2"].startswith("MAINT"), "check mode moved the traffic"

    runner = run_playbook(tmp_path / "run", fresh_lab.home, FAILOVER, ident="run")
    assert runner.status == "successful", runner.stdout.read()
    result = task_result(runner, DB_TASK)
    assert result["previous_primary"] == "pg1" and result["new_primary"] == "pg2"
    assert result["fence"]["pending"] is False
    assert set(result["timings"]) >= {"detect_s", "drain_s", "fence_s", "promote_s", "detect_to_promote_s", "switch_s"}
    assert result["nodes"]["pg1"]["reachable"] is False and result["nodes"]["pg2"]["in_recovery"] is True
    assert [lb["changed"] for lb in result["load_balancers"]] == [True]
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
    assert lab.nodes["pg2"].in_recovery() is False
    assert_streams_from(lab, "pg1", "pg2")


def test_failover_rejoin_failover_keeps_every_write(fresh_lab, tmp_path):
    """The second failover after a rejoin loses nothing: the rejoined node streamed from the new primary."""
    lab = fresh_lab.lab
    state = lab.cfg.state
    fresh_lab.mttr("break", "primary-down")
    first = run_playbook(tmp_path / "first", fresh_lab.home, FAILOVER, ident="first")
    assert first.status == "successful", first.stdout.read()
    rejoin = run_playbook(tmp_path / "rejoin", fresh_lab.home, FAILOVER, {"failover_rejoin": True}, ident="rejoin")
    assert rejoin.status == "successful", rejoin.stdout.read()
    assert_streams_from(lab, "pg1", "pg2")
    with connect(state, state["ports"]["lb_db"]) as conn:
        row = conn.execute(
            "INSERT INTO orders (customer, amount_cents) VALUES ('between-failovers', 1) RETURNING id"
        ).fetchone()[0]

    again = run_playbook(tmp_path / "again", fresh_lab.home, FAILOVER, {"failover_rejoin": True}, ident="again")
    assert again.status == "successful", again.stdout.read()
    assert "already streams from pg2" in task_result(again, REJOIN_TASK)["msg"]
    assert task_result(again, REJOIN_TASK)["changed"] is False

    fresh_lab.mttr("break", "primary-down")  # pg2 now
    second = run_playbook(tmp_path / "second", fresh_lab.home, FAILOVER, ident="second")
    assert second.status == "successful", second.stdout.read()
    assert task_result(second, DB_TASK)["new_primary"] == "pg1"
    with connect(state, state["ports"]["lb_db"]) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone()[0] == state["ports"]["pg1"]
        assert conn.execute("SELECT count(*) FROM orders WHERE id = %s", (row,)).fetchone()[0] == 1
    back = run_playbook(tmp_path / "back", fresh_lab.home, FAILOVER, {"failover_rejoin": True}, ident="back")
    assert back.status == "successful", back.stdout.read()
    assert_streams_from(lab, "pg2", "pg1")


def test_rejoin_right_after_promotion_follows_the_new_timeline(fresh_lab):
    """pg_rewind straight after promotion (before the end-of-recovery checkpoint) still rejoins the node."""
    lab = fresh_lab.lab
    state = lab.cfg.state
    fresh_lab.mttr("break", "primary-down")
    engine(lab, "pg1", "pg2", run_process).failover()
    start = [str(Path(sys.executable).parent / "mttr"), "lab", "--home", str(fresh_lab.home), "up"]
    result = rejoin(node(lab, "pg1"), node(lab, "pg2"), run_process, state["pg_bin"], lab.cfg.run_as, start=start)
    assert result["changed"] and result["proven"] and result["upstream"] == f"127.0.0.1:{state['ports']['pg2']}"
    assert_streams_from(lab, "pg1", "pg2")
    again = rejoin(node(lab, "pg1"), node(lab, "pg2"), run_process, state["pg_bin"], lab.cfg.run_as, start=start)
    assert again["changed"] is False
    assert rejoin(node(lab, "pg1"), node(lab, "pg2"), run_process, check_mode=True, start=start)["changed"] is False


def test_rejoin_repoints_a_standby_streaming_from_itself(fresh_lab):
    """The self-loop the old rejoin left (primary_conninfo naming the node itself) is found and repaired."""
    lab = fresh_lab.lab
    state = lab.cfg.state
    fresh_lab.mttr("break", "primary-down")
    engine(lab, "pg1", "pg2", run_process).failover()
    fresh_lab.up()
    with connect(state, state["ports"]["pg1"], "postgres") as conn:
        conn.execute(f"ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port={state['ports']['pg1']}'")
        conn.execute("SELECT pg_reload_conf()")
    start = [str(Path(sys.executable).parent / "mttr"), "lab", "--home", str(fresh_lab.home), "up"]
    check = rejoin(node(lab, "pg1"), node(lab, "pg2"), run_process, check_mode=True, start=start)
    assert check["changed"] is True
    result = rejoin(node(lab, "pg1"), node(lab, "pg2"), run_process, state["pg_bin"], lab.cfg.run_as, start=start)
    assert result["changed"] and result["proven"]
    assert_streams_from(lab, "pg1", "pg2")


def test_split_brain_never_happens_over_repeated_failovers(fresh_lab):
    lab = fresh_lab.lab
    state = lab.cfg.state
    primary, standby = "pg1", "pg2"
    for _round in range(10):
        fresh_lab.mttr("break", "primary-down")
        result = engine(lab, primary, standby, run_process).failover()
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
    plan = engine(lab, "pg1", "pg2", run_process).failover(check_mode=True)
    assert plan["changed"] and plan["old_reachable"] is True
    assert lab.nodes["pg2"].in_recovery() is True

    result = engine(lab, "pg1", "pg2", run_process).failover()
    assert "made read-only and its sessions terminated" in result["fence"]["actions"]
    assert "stopped" in result["fence"]["actions"]
    assert lab.nodes["pg1"].pid() is None
    assert lab.nodes["pg2"].in_recovery() is False
    switch = HAProxySwitch(state["lb"]["admin_socket"], state["lb"]["db_backend"], "pg1", "pg2")
    assert switch.switch()["changed"] is True
    assert switch.switch()["changed"] is False
    assert write_through_lb(state) == state["ports"]["pg2"]
    again = engine(lab, "pg1", "pg2", run_process).failover()
    assert again["changed"] is False


def stop_receiving(state, port):
    """Stop a standby's WAL receiver (empty primary_conninfo): it keeps answering but receives nothing."""
    with connect(state, port, "postgres") as standby:
        standby.execute("ALTER SYSTEM SET primary_conninfo = ''")
        standby.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while standby.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone()[0]:
            assert time.monotonic() < deadline, "the WAL receiver did not stop"
            time.sleep(0.1)


def test_forced_lossy_failover_lands_on_the_timeline_and_in_the_review(fresh_lab, tmp_path):
    """A forced promotion that may lose writes says so in its result, on the incident's timeline and in the review."""
    lab = fresh_lab.lab
    state = lab.cfg.state
    store_path = tmp_path / "incidents.sqlite"
    with IncidentStore(str(store_path)) as store:
        incident = store.open(["orders"], "SEV1", "orders primary lost")[0]["id"]
    stop_receiving(state, state["ports"]["pg2"])
    with connect(state, state["ports"]["pg1"]) as primary:
        primary.execute("INSERT INTO orders (customer, amount_cents) SELECT 'lost', g FROM generate_series(1, 5000) g")
    fresh_lab.mttr("break", "primary-down")
    timeline_env = {"ANSIBLE_CALLBACKS_ENABLED": "mttr.recovery.timeline", "MTTR_INCIDENT_STORE": str(store_path)}

    refused = run_playbook(
        tmp_path / "refused",
        fresh_lab.home,
        FAILOVER,
        {"mttr_incident_id": incident, "failover_max_lag_bytes": 1024},
        envvars=timeline_env,
    )
    assert refused.status == "failed"
    assert "never received" in task_result(refused, DB_TASK)["msg"]
    assert lab.nodes["pg2"].in_recovery() is True

    forced = run_playbook(
        tmp_path / "forced",
        fresh_lab.home,
        FAILOVER,
        {"mttr_incident_id": incident, "failover_max_lag_bytes": 1024, "failover_force": True},
        envvars=timeline_env,
    )
    assert forced.status == "successful", forced.stdout.read()
    result = task_result(forced, DB_TASK)
    assert result["exposure"]["acknowledged_writes_at_risk"] is True and result["exposure"]["unreceived_bytes"] > 0
    with IncidentStore(str(store_path)) as store:
        risks = [entry for entry in store.timeline(incident) if entry["kind"] == "risk"]
        assert len(risks) == 1 and "DATA LOSS POSSIBLE" in risks[0]["message"]
        report = build_report(store.get(incident), store.timeline(incident))
    assert any("Data-loss risk" in item and "DATA LOSS POSSIBLE" in item for item in report["went_wrong"])


def test_received_but_unreplayed_wal_is_not_counted_as_loss(fresh_lab):
    """A standby that received everything but paused replay loses nothing on promotion: it is not refused."""
    lab = fresh_lab.lab
    state = lab.cfg.state
    with connect(state, state["ports"]["pg2"], "postgres") as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
    with connect(state, state["ports"]["pg1"]) as primary:
        primary.execute(
            "INSERT INTO orders (customer, amount_cents) SELECT 'paused', g FROM generate_series(1, 20000) g"
        )
        wanted = primary.execute("SELECT count(*) FROM orders").fetchone()[0]
    time.sleep(1)
    fresh_lab.mttr("break", "primary-down")
    result = engine(lab, "pg1", "pg2", run_process, max_lag_bytes=1024).failover()
    assert result["exposure"]["unreceived_bytes"] == 0 and result["exposure"]["acknowledged_writes_at_risk"] is False
    assert "risk" not in result
    with connect(state, state["ports"]["pg2"]) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == wanted


def test_standby_that_stopped_receiving_is_refused_unless_forced(fresh_lab):
    """The loss is the primary's WAL the standby never received: measured from the old primary's WAL."""
    lab = fresh_lab.lab
    state = lab.cfg.state
    stop_receiving(state, state["ports"]["pg2"])
    with connect(state, state["ports"]["pg1"]) as primary:
        primary.execute("INSERT INTO orders (customer, amount_cents) SELECT 'lost', g FROM generate_series(1, 20000) g")
    with pytest.raises(FailoverError, match=r"never received [0-9]+ bytes of pg1's WAL"):
        engine(lab, "pg1", "pg2", run_process, max_lag_bytes=1024 * 1024).failover(check_mode=True)
    fresh_lab.mttr("break", "primary-down")
    nodes = [node(lab, "pg1"), node(lab, "pg2")]
    with pytest.raises(FailoverError, match=r"never received [0-9]+ bytes of pg1's WAL") as refused:
        failover_cluster(nodes, run=run_process, pg_bin=state["pg_bin"], os_user=lab.cfg.run_as, max_lag_bytes=1024)
    assert "set force" in str(refused.value)
    assert lab.nodes["pg2"].in_recovery() is True

    # without the data directory nothing tells how much is missing: refused too
    remote = PgNode(
        "pg1", "127.0.0.1", state["ports"]["pg1"], state["db"]["superuser"], state["db"]["superuser_password"]
    )
    with pytest.raises(FailoverError, match="cannot tell how much of pg1's WAL pg2 never received"):
        failover_cluster([remote, node(lab, "pg2")], run=run_process)

    result = failover_cluster(
        nodes, run=run_process, pg_bin=state["pg_bin"], os_user=lab.cfg.run_as, max_lag_bytes=1024, force=True
    )
    exposure = result["exposure"]
    assert exposure["primary_lsn_source"] == "wal" and exposure["replication"] == "asynchronous"
    assert exposure["unreceived_bytes"] > 1024 * 1024 and exposure["acknowledged_writes_at_risk"] is True
    assert "DATA LOSS POSSIBLE" in result["msg"] and "DATA LOSS POSSIBLE" in result["risk"]
    with connect(state, state["ports"]["pg2"]) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE customer = 'lost'").fetchone()[0] == 0


def test_one_call_chooses_drains_fences_and_switches(fresh_lab):
    """failover_cluster: the old primary leaves the backend before it is fenced; a rerun changes nothing."""
    lab = fresh_lab.lab
    state = lab.cfg.state
    nodes = [node(lab, "pg1"), node(lab, "pg2")]
    balancer = [(state["lb"]["admin_socket"], state["lb"]["db_backend"])]
    options = {"run": run_process, "pg_bin": state["pg_bin"], "os_user": lab.cfg.run_as}

    healthy = failover_cluster(nodes, balancer, **options)
    assert healthy["changed"] is False and healthy["primary"] == "pg1"
    assert "no failover needed" in healthy["msg"]

    plan = failover_cluster(nodes, balancer, switchover=True, check_mode=True, **options)
    assert plan["changed"] and plan["previous_primary"] == "pg1" and plan["new_primary"] == "pg2"
    assert lab.nodes["pg2"].in_recovery() is True and lb_status(lab)["pg1"].startswith("UP")

    done = failover_cluster(nodes, balancer, switchover=True, **options)
    assert done["changed"] and done["primary"] == "pg2"
    assert "stopped" in done["fence"]["actions"]
    assert write_through_lb(state) == state["ports"]["pg2"]
    status = lb_status(lab)
    assert status["pg1"].startswith("MAINT") and status["pg2"].startswith("UP")

    again = failover_cluster(nodes, balancer, **options)
    assert again["changed"] is False and again["primary"] == "pg2"


def test_load_balancer_is_repaired_when_a_previous_run_stopped_after_promotion(fresh_lab):
    lab = fresh_lab.lab
    state = lab.cfg.state
    fresh_lab.mttr("break", "primary-down")
    engine(lab, "pg1", "pg2", run_process).failover()  # promoted, HAProxy not switched
    nodes = [node(lab, "pg1"), node(lab, "pg2")]
    balancer = [(state["lb"]["admin_socket"], state["lb"]["db_backend"])]
    repaired = failover_cluster(nodes, balancer, run=run_process)
    assert repaired["changed"] is True and repaired["previous_primary"] is None
    assert "traffic moved" in repaired["msg"]
    assert write_through_lb(state) == state["ports"]["pg2"]


def test_unreachable_data_directory_leaves_fencing_pending_until_fenced_on_its_host(fresh_lab):
    lab = fresh_lab.lab
    state = lab.cfg.state
    fresh_lab.mttr("break", "primary-down")
    remote = PgNode(
        "pg1", "127.0.0.1", state["ports"]["pg1"], state["db"]["superuser"], state["db"]["superuser_password"]
    )
    with pytest.raises(FailoverError, match="cannot tell how much of pg1's WAL pg2 never received"):
        failover_cluster([remote, node(lab, "pg2")], run=run_process)
    result = failover_cluster([remote, node(lab, "pg2")], run=run_process, force=True)
    assert result["exposure"]["acknowledged_writes_at_risk"] is None and "DATA LOSS UNKNOWN" in result["risk"]
    assert result["changed"] and result["fence"]["pending"] is True
    assert "FENCING PENDING" in result["msg"]
    assert lab.nodes["pg2"].in_recovery() is False

    # what the role does next, on the old primary's own host
    fenced = fence_data_dir(node(lab, "pg1"), node(lab, "pg2"), os_user=lab.cfg.run_as)
    assert fenced["changed"] is True
    assert fence_data_dir(node(lab, "pg1"), node(lab, "pg2"), os_user=lab.cfg.run_as)["changed"] is False
    lab.nodes["pg1"].start()
    assert lab.nodes["pg1"].in_recovery() is True
    with connect(state, state["ports"]["pg1"]) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('split-brain', 1)")


def test_choice_refuses_split_brain_and_a_cluster_without_standby(fresh_lab):
    lab = fresh_lab.lab
    nodes = [node(lab, "pg1"), node(lab, "pg2")]
    states = probe_all(nodes)
    assert choose(nodes, states) == (None, "pg1")
    assert choose(nodes, states, switchover=True) == ("pg1", "pg2")
    both = dict(states, pg2=dict(states["pg1"]))
    with pytest.raises(FailoverError, match="split brain"):
        choose(nodes, both)
    fresh_lab.mttr("break", "primary-down")
    lab.nodes["pg2"].stop()
    with pytest.raises(FailoverError, match="no standby answers"):
        failover_cluster(nodes, run=run_process)


def third_node(lab):
    """A third node, pg3, streaming from pg1 (not in the lab's own bookkeeping: stop it yourself)."""
    state = lab.cfg.state
    state["nodes"]["pg3"] = {"port": free_port(), "data": str(Path(state["nodes"]["pg1"]["data"]).parent / "pg3")}
    pg3 = PostgresNode(lab.cfg, "pg3")
    pg3.base_backup_from(lab.nodes["pg1"])
    pg3.start()
    return pg3


def standby_probe(state, port, **fields):
    spec = {
        "kind": "postgres",
        "host": "127.0.0.1",
        "port": port,
        "user": state["db"]["superuser"],
        "password": state["db"]["superuser_password"],
        "report_replication": True,
    }
    return run_probes(normalize([dict(spec, **fields)]))[0]


def point_at(state, port, upstream_port):
    db = state["db"]
    conninfo = f"host=127.0.0.1 port={upstream_port} user={db['superuser']} password={db['superuser_password']}"
    with connect(state, port, "postgres") as conn:
        conn.execute(f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 20
        while conn.execute("SELECT status, sender_port FROM pg_stat_wal_receiver").fetchone() != (
            "streaming",
            upstream_port,
        ):
            assert time.monotonic() < deadline, "the standby did not start streaming from its new upstream"
            time.sleep(0.1)


def test_standby_probe_is_down_when_it_streams_from_itself_or_an_undeclared_cascade(fresh_lab):
    lab = fresh_lab.lab
    state = lab.cfg.state
    ports = state["ports"]
    healthy = standby_probe(state, ports["pg2"])
    assert healthy["status"] == "healthy", healthy
    assert healthy["details"]["upstream"] == f"127.0.0.1:{ports['pg1']}"
    assert healthy["details"]["upstream_role"] == "primary"

    pg3 = third_node(lab)
    try:
        point_at(state, pg3.port, ports["pg2"])
        cascade = standby_probe(state, pg3.port)
        assert cascade["status"] == "down" and "itself a standby" in cascade["error"], cascade
        declared = standby_probe(state, pg3.port, cascade_from=[f"127.0.0.1:{ports['pg2']}"])
        assert declared["status"] == "healthy" and declared["details"]["upstream_role"] == "cascade"

        point_at(state, ports["pg2"], ports["pg2"])  # the self-loop the old rejoin left
        loop = standby_probe(state, ports["pg2"])
        assert loop["status"] == "down" and "replicates from itself" in loop["error"], loop
        status = json.loads(fresh_lab.mttr("status", "--json").stdout)
        pg2 = next(row for row in status if row["component"] == "postgres pg2")
        assert pg2["state"] == "degraded" and "(itself)" in pg2["detail"], pg2
    finally:
        pg3.stop("immediate")


def test_remaining_standbys_follow_the_new_primary(fresh_lab):
    """A third node streaming from pg1 is repointed at pg2 in the same call, and replicates from it."""
    lab = fresh_lab.lab
    state = lab.cfg.state
    pg3 = third_node(lab)
    pg3_port = pg3.port
    try:
        fresh_lab.mttr("break", "primary-down")
        nodes = [node(lab, name) for name in ("pg1", "pg2", "pg3")]
        result = failover_cluster(nodes, run=run_process, pg_bin=state["pg_bin"], os_user=lab.cfg.run_as)
        assert result["new_primary"] == "pg2"
        assert result["standbys"] == [{"node": "pg3", "msg": "pg3 now follows pg2"}]
        with connect(state, state["ports"]["pg2"]) as conn:
            conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('after-failover', 1)")
        deadline = time.monotonic() + 30
        with connect(state, pg3_port) as conn:
            while True:
                seen = conn.execute("SELECT count(*) FROM orders WHERE customer = 'after-failover'").fetchone()[0]
                receiver = conn.execute("SELECT status, sender_port FROM pg_stat_wal_receiver").fetchone()
                if seen == 1 and receiver == ("streaming", state["ports"]["pg2"]):
                    break
                assert time.monotonic() < deadline, f"pg3 does not replicate from pg2 (receiver {receiver})"
                time.sleep(0.2)
        again = failover_cluster(nodes, run=run_process)
        assert again["changed"] is False and "standbys" not in again
    finally:
        pg3.stop("immediate")
