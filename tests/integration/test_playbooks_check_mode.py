"""Every playbook passes --check against the lab and changes nothing on the real services.

The lab is broken first where a playbook only has work to do on a broken service (primary-down for the
failover, bad-release for the rollback, data-loss for restore), so check mode plans a real change. What
is compared before and after each check run comes from the services themselves: the primary, the
HAProxy backends, the release link, the orders rows, the backups in the repositories and the files in
the review directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from conftest import REPO, run_playbook, started_lab, stop_lab

pytestmark = pytest.mark.integration

PLAYBOOKS = sorted(path.stem for path in (REPO / "playbooks").glob("*.yml"))
# which break gives each playbook something to do ("" for none)
BREAKS = {"failover": "primary-down", "rollback": "bad-release", "restore": "data-loss", "drill": ""}


def test_every_playbook_is_covered():
    assert set(PLAYBOOKS) >= {"backup", "drill", "failover", "health", "postmortem", "restore", "rollback"}


def orders(state):
    for port in (state["ports"]["pg1"], state["ports"]["pg2"]):
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                dbname="orders",
                user=state["db"]["superuser"],
                password=state["db"]["superuser_password"],
                autocommit=True,
                connect_timeout=3,
            ) as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    continue
                exists = conn.execute("SELECT to_regclass('public.orders') IS NOT NULL").fetchone()[0]
                return conn.execute("SELECT count(*) FROM orders").fetchone()[0] if exists else None
        except psycopg.OperationalError:
            continue
    return "no primary"


def files_under(path):
    path = Path(path)
    return sorted(str(item.relative_to(path)) for item in path.rglob("*")) if path.exists() else []


def snapshot(lab, home):
    state = lab.cfg.state
    return {
        "primary": lab.primary().name if lab.primary() else None,
        "in_recovery": {name: node.in_recovery() for name, node in lab.nodes.items()},
        # the admin state (a health check may mark a broken server DOWN meanwhile: not a change)
        "backends": {
            server: "maint" if status.startswith("MAINT") else "ready"
            for server, status in lab.haproxy.runtime.server_status(state["lb"]["db_backend"]).items()
        },
        "release": os.readlink(lab.app.current),
        "orders": orders(state),
        "home": [name for name in files_under(home) if not name.startswith(("log/", "pg/", "run/", "objstore/"))],
        "objects": objects(lab),
    }


def objects(lab):
    """Every object in the lab's bucket (the S3 backup repository), with its size."""
    listing = lab.objstore.client().list_objects_v2(Bucket=lab.cfg.state["s3"]["bucket"])
    return sorted((item["Key"], item["Size"]) for item in listing.get("Contents", []))


@pytest.fixture(scope="module")
def backed_up_lab(tmp_path_factory):
    handle = started_lab()
    runner = run_playbook(tmp_path_factory.mktemp("backup"), handle.home, "mttr.recovery.backup", ident="backup")
    assert runner.status == "successful", runner.stdout.read()
    yield handle
    stop_lab(handle)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_check_mode_and_changes_nothing(backed_up_lab, playbook, tmp_path):
    handle = backed_up_lab
    lab = handle.lab
    handle.up()  # repair what an earlier case broke (up never re-seeds; a data-loss stays)
    breaking = BREAKS.get(playbook, "")
    extravars = {}
    if playbook == "postmortem":
        with IncidentStore(str(handle.home / "incidents.sqlite")) as store:
            record = store.open(["orders"], "SEV3", "check mode")[0]
        extravars = {"mttr_incident_id": record["id"], "review_dir": str(handle.home / "reviews")}
    if breaking and not (breaking == "data-loss" and orders(lab.cfg.state) is None):
        result = handle.mttr("break", breaking)
        assert result.returncode == 0, result.stdout + result.stderr
    before = snapshot(lab, handle.home)
    runner = run_playbook(
        tmp_path, handle.home, f"mttr.recovery.{playbook}", extravars, ident="check", cmdline="--check"
    )
    output = runner.stdout.read()
    assert runner.status == "successful", output
    assert "[WARNING]" not in output, output
    assert snapshot(lab, handle.home) == before, f"{playbook} --check changed the services"
