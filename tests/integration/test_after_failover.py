"""The seam between failover and the database playbooks: after a failover they act on the live primary.

The inventory's db_primary group names the lab's initial topology; once pg2 has been promoted, a backup,
a restore or a drill aimed at "the primary" must reach pg2, found from PostgreSQL itself.
"""

from __future__ import annotations

import pytest

from conftest import REPO, run_playbook, task_result
from mttr.lab.cycles import connect

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "playbooks"


def orders_on(state, node):
    with connect(state, state["ports"][node]) as conn:
        if not conn.execute("SELECT to_regclass('public.orders') IS NOT NULL").fetchone()[0]:
            return None
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]


def test_backup_restore_and_drill_follow_the_primary_after_a_failover(fresh_lab, tmp_path):
    lab = fresh_lab.lab
    state = lab.cfg.state
    fresh_lab.mttr("break", "primary-down")
    failover = run_playbook(tmp_path / "failover", fresh_lab.home, PLAYBOOKS / "failover.yml", ident="failover")
    assert failover.status == "successful", failover.stdout.read()
    rejoin = run_playbook(
        tmp_path / "rejoin", fresh_lab.home, PLAYBOOKS / "failover.yml", {"failover_rejoin": True}, ident="rejoin"
    )
    assert rejoin.status == "successful", rejoin.stdout.read()
    assert lab.primary().name == "pg2"
    with connect(state, state["ports"]["pg2"]) as conn:
        conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('after-failover', 1)")
    wanted = orders_on(state, "pg2")

    backup = run_playbook(tmp_path / "backup", fresh_lab.home, PLAYBOOKS / "backup.yml", ident="backup")
    assert backup.status == "successful", backup.stdout.read()

    fresh_lab.mttr("break", "data-loss")
    assert orders_on(state, "pg2") is None
    restore = run_playbook(tmp_path / "restore", fresh_lab.home, PLAYBOOKS / "restore.yml", ident="restore")
    assert restore.status == "successful", restore.stdout.read()
    assert orders_on(state, "pg2") == wanted, "the row written after the failover is in the restored data"
    assert lab.primary().name == "pg2" and lab.nodes["pg1"].in_recovery() is True

    drill = run_playbook(tmp_path / "drill", fresh_lab.home, PLAYBOOKS / "drill.yml", ident="drill")
    assert drill.status == "successful", drill.stdout.read()
    hosts = {
        event["event_data"].get("host")
        for event in drill.events
        if event["event"] == "runner_on_ok" and event["event_data"].get("play") == "Drill a restore"
    }
    assert hosts == {"pg2"}, hosts
    assert task_result(restore, "Group the database hosts by their live role")
