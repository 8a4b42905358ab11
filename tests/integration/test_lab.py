"""The lab against real servers: PostgreSQL streaming, HAProxy routing, the app, moto, and breaks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from conftest import free_port_base, run_mttr, started_lab, stop_lab
from mttr.lab.process import pid_alive

pytestmark = pytest.mark.integration


def wait_until(predicate, timeout=15.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def connect(state, port, dbname="orders", user=None, password=None):
    db = state["db"]
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        dbname=dbname,
        user=user or db["superuser"],
        password=password or db["superuser_password"],
        connect_timeout=3,
        autocommit=True,
    )


def lab_processes(home: Path) -> list[int]:
    """Every process on the machine whose command line or working directory lies in ``home``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(home) in cmdline or cwd.startswith(str(home)):
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------------------- a healthy lab


def test_up_twice_is_idempotent(module_lab):
    pids = {row["component"]: row["pid"] for row in module_lab.lab.status()}
    again = module_lab.up()
    assert "Started" not in again.stdout and "Initialising" not in again.stdout
    assert {row["component"]: row["pid"] for row in module_lab.lab.status()} == pids


def test_status_reports_every_component_up(module_lab):
    result = module_lab.mttr("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["component"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"postgres pg1", "postgres pg2", "haproxy", "app", "objstore"}
    assert all(row["state"] == "up" for row in rows.values()), rows
    assert rows["postgres pg1"]["role"] == "primary"
    assert rows["postgres pg2"]["role"] == "standby"
    table = module_lab.mttr("status")
    assert "primary" in table.stdout and "standby" in table.stdout


def test_everything_listens_on_loopback_only(module_lab):
    state = module_lab.lab.cfg.state
    for port in state["ports"].values():
        with socket.socket() as sock:
            sock.settimeout(1)
            assert sock.connect_ex(("127.0.0.1", port)) == 0, port
    listeners = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout.splitlines()
    ours = [line.split()[3] for line in listeners if int(line.split()[3].rsplit(":", 1)[1]) in state["ports"].values()]
    assert ours and all(addr.startswith("127.0.0.1:") for addr in ours), ours


def test_replication_streams_a_write_to_the_standby(module_lab):
    state = module_lab.lab.cfg.state
    marker = f"replication-{time.time_ns()}"
    with connect(state, state["ports"]["pg1"]) as conn:
        conn.execute("INSERT INTO orders (customer, amount_cents) VALUES (%s, 1)", (marker,))
    with connect(state, state["ports"]["pg2"]) as standby:
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        found = wait_until(
            lambda: standby.execute("SELECT count(*) FROM orders WHERE customer = %s", (marker,)).fetchone()[0]
        )
    assert found == 1


def test_haproxy_routes_writes_to_the_primary(module_lab):
    state = module_lab.lab.cfg.state
    with connect(
        state, state["ports"]["lb_db"], user=state["db"]["app_user"], password=state["db"]["app_password"]
    ) as conn:
        in_recovery, port = conn.execute("SELECT pg_is_in_recovery(), inet_server_port()").fetchone()
        conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('through-haproxy', 5)")
    assert in_recovery is False
    assert port == state["ports"]["pg1"]


def test_app_reads_and_writes_orders_through_haproxy(module_lab):
    public = module_lab.lab.cfg.state["app"]["public_url"]
    status, body = http("GET", public + "/health")
    assert status == 200, body
    before = json.loads(body)["orders"]
    status, body = http("POST", public + "/orders", {"customer": "it", "amount_cents": 1234})
    assert status == 201, body
    new_id = json.loads(body)["id"]
    status, body = http("GET", public + "/orders?limit=1")
    listing = json.loads(body)
    assert listing["count"] == before + 1
    assert listing["orders"][0]["id"] == new_id
    status, body = http("POST", public + "/orders", {"customer": "it"})
    assert status == 400


def test_objstore_serves_the_backup_bucket(module_lab):
    lab = module_lab.lab
    client = lab.objstore.client()
    client.put_object(Bucket=lab.cfg.state["s3"]["bucket"], Key="probe.txt", Body=b"hello")
    assert client.get_object(Bucket=lab.cfg.state["s3"]["bucket"], Key="probe.txt")["Body"].read() == b"hello"


# ---------------------------------------------------------------------------- breaks


@pytest.fixture
def breakable():
    handle = started_lab()
    yield handle
    stop_lab(handle)


def test_break_primary_down_stops_writes(breakable):
    state = breakable.lab.cfg.state
    result = breakable.mttr("break", "primary-down")
    assert result.returncode == 0, result.stderr
    assert "stopped the PostgreSQL primary pg1" in result.stdout
    assert breakable.lab.nodes["pg1"].pid() is None
    with pytest.raises(psycopg.OperationalError):
        connect(state, state["ports"]["lb_db"]).close()
    with connect(state, state["ports"]["pg2"]) as standby:
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    status = breakable.mttr("status", "--json")
    assert status.returncode == 3
    rows = {row["component"]: row for row in json.loads(status.stdout)}
    assert rows["postgres pg1"]["state"] == "down"
    # 'up' brings the stopped primary back
    breakable.up()
    assert breakable.lab.nodes["pg1"].in_recovery() is False


def test_break_bad_release_fails_health(breakable):
    lab = breakable.lab
    result = breakable.mttr("break", "bad-release")
    assert result.returncode == 0, result.stderr
    assert "deployed app release 1.0.1" in result.stdout
    assert lab.app.current_version() == "1.0.1"
    assert lab.app.versions() == ["1.0.0", "1.0.1"]
    status, body = http("GET", lab.cfg.state["app"]["url"] + "/health")
    assert status == 503 and b"orders_v2" in body
    assert wait_until(lambda: http("GET", lab.cfg.state["app"]["public_url"] + "/health")[0] == 503)


def test_break_data_loss_drops_orders_everywhere(breakable):
    state = breakable.lab.cfg.state
    result = breakable.mttr("break", "data-loss")
    assert result.returncode == 0, result.stderr
    assert "dropped table orders (1000 rows)" in result.stdout
    for port in (state["ports"]["pg1"], state["ports"]["pg2"]):
        with connect(state, port) as conn:
            assert wait_until(lambda c=conn: c.execute("SELECT to_regclass('public.orders')").fetchone()[0] is None)
    again = breakable.mttr("break", "data-loss")
    assert again.returncode == 1 and "already gone" in again.stderr
    # 'up' restarts what is stopped but never re-seeds over lost data
    breakable.up()
    with connect(state, state["ports"]["pg1"]) as conn:
        assert conn.execute("SELECT to_regclass('public.orders')").fetchone()[0] is None


def test_break_app_crash_kills_the_app(breakable):
    lab = breakable.lab
    pid = lab.app.tracked.pid()
    result = breakable.mttr("break", "app-crash")
    assert result.returncode == 0, result.stderr
    assert f"pid {pid}" in result.stdout
    assert not pid_alive(pid)
    assert http("GET", lab.cfg.state["app"]["public_url"] + "/health")[0] == 503
    breakable.up()
    assert http("GET", lab.cfg.state["app"]["public_url"] + "/health")[0] == 200


def test_breaks_are_recorded(breakable):
    breakable.mttr("break", "app-crash")
    records = [json.loads(line) for line in (breakable.home / "breaks.jsonl").read_text().splitlines()]
    assert [r["scenario"] for r in records] == ["app-crash"]


# ---------------------------------------------------------------------------- down and faults


def test_down_leaves_no_process_behind(breakable):
    home = breakable.home
    assert lab_processes(home)
    result = breakable.mttr("down")
    assert result.returncode == 0
    assert result.stdout.count("Stopped") == 5, result.stdout
    assert wait_until(lambda: not lab_processes(home), timeout=10), lab_processes(home)
    assert not list((home / "run").glob("*.pid"))
    again = breakable.mttr("down")
    assert again.returncode == 0 and "Nothing to stop" in again.stdout


def test_stale_pid_file_of_another_process_is_left_alone(breakable):
    breakable.mttr("break", "app-crash")
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (breakable.home / "run" / "app.pid").write_text(f"{bystander.pid}\n")
        result = breakable.mttr("down")
        assert result.returncode == 0
        assert "belongs to another program, which was left alone" in result.stdout
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_taken_port_is_refused_before_anything_starts(lab_home):
    base = free_port_base()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 20))
        blocker.listen()
        result = run_mttr("lab", "up", "--port-base", str(base), home=lab_home)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"port {base + 20}" in result.stderr and "--port-base" in result.stderr
    assert "Traceback" not in result.stderr
    assert not lab_processes(lab_home)


def test_unknown_scenario_and_missing_lab_are_one_line_errors(lab_home):
    result = run_mttr("lab", "status", home=lab_home)
    assert result.returncode == 1 and "mttr lab up" in result.stderr and result.stderr.count("\n") == 1
    result = run_mttr("lab", "down", home=lab_home)
    assert result.returncode == 0 and "Nothing to stop" in result.stdout


def test_unknown_scenario_is_named(module_lab):
    result = module_lab.mttr("break", "meteor")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "mttr: error: unknown scenario 'meteor': choose one of primary-down, bad-release, data-loss, app-crash"
    )


def test_missing_postgres_binaries_are_a_clear_error(lab_home):
    result = run_mttr("lab", "up", home=lab_home, env={"MTTR_PG_BIN": str(lab_home)})
    assert result.returncode == 1
    assert "PostgreSQL server binaries not found" in result.stderr and "Traceback" not in result.stderr


def test_changing_the_port_base_of_an_existing_lab_is_refused(module_lab):
    result = module_lab.mttr("up", "--port-base", str(module_lab.port_base + 100))
    assert result.returncode == 1
    assert "was created with port base" in result.stderr
