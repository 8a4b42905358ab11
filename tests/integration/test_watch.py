"""``mttr watch`` against the lab: a break is detected by the watcher's own probe rounds, recovered once by the
same recovery as ``mttr recover``, and the incident is dated at the first failed probe (before the recovery)."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import time

import pytest
from test_recover import health, incidents, steps, timeline

from conftest import MTTR, VENV_BIN

pytestmark = pytest.mark.integration


def start_watcher(lab, *args, env=None):
    env = dict(os.environ, MTTR_HOME=str(lab.home), PATH=f"{VENV_BIN}:{os.environ['PATH']}", **(env or {}))
    return subprocess.Popen(
        [MTTR, "watch", "--service", "orders", "--interval", "0.5", "--failures", "2", "--hold", "60", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(watcher, text, timeout=120):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = watcher.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} from the watcher:\n{''.join(seen)}")


def stop(watcher):
    """Ctrl-C, as a person stops it; a watcher that does not stop is killed (never left running) and fails."""
    watcher.send_signal(signal.SIGINT)
    try:
        out, _err = watcher.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        watcher.kill()
        watcher.communicate(timeout=10)
        raise AssertionError("the watcher did not stop within 60 s of Ctrl-C") from None
    return out


def at(text):
    return datetime.datetime.fromisoformat(text).timestamp()


def test_watch_detects_recovers_once_and_dates_the_incident_at_detection(fresh_lab):
    watcher = start_watcher(fresh_lab)
    try:
        wait_for_line(watcher, "watching orders")
        time.sleep(1.5)  # a few healthy rounds first
        broke_at = time.time()
        fresh_lab.mttr("break", "primary-down")
        seen = wait_for_line(watcher, "orders: recovery")
        assert "validated, incident resolved" in seen[-1], "".join(seen)
        # the recovered service stays healthy: no second decision in the next rounds
        time.sleep(3)
    finally:
        out = stop(watcher)
    assert watcher.returncode == 0, out
    assert "stopped (Ctrl-C or SIGTERM)" in out, out
    (record,) = incidents(fresh_lab)
    assert record["status"] == "resolved"
    entries = timeline(fresh_lab, record["id"])
    plan = next(entry for entry in entries if entry["kind"] == "plan")
    # detected at the first failed probe: after the break, before the recovery's triage
    assert broke_at <= at(record["opened_at"]) < at(plan["time"]) <= at(record["resolved_at"])
    assert steps(entries, "orders-db:failover") == [
        ("orders-db:failover", "started"),
        ("orders-db:failover", "completed"),
    ]
    # the failover ran in the watcher at its decision; the playbook resumed after it and did not fail over again
    assert "failing over orders-db in-process (pg1, pg2)" in out + "".join(seen), out
    tasks = [entry["action"] for entry in entries if entry["kind"] == "task"]
    assert not [task for task in tasks if "promote" in task], tasks
    assert "Probe every involved service until it validates" in tasks, tasks
    assert health(fresh_lab)[0] == 200


def test_two_breaks_in_a_row_make_one_incident_and_one_recovery(fresh_lab):
    watcher = start_watcher(fresh_lab)
    try:
        wait_for_line(watcher, "watching orders")
        fresh_lab.mttr("break", "app-crash")
        fresh_lab.mttr("break", "bad-release")
        seen = wait_for_line(watcher, "orders: recovery")
        time.sleep(3)
    finally:
        out = stop(watcher)
    everything = "".join(seen) + out
    assert "validated, incident resolved" in everything, everything
    assert len(incidents(fresh_lab)) == 1, everything
    assert everything.count("recovering (mttr recover)") == 1, everything
    assert health(fresh_lab)[0] == 200


def test_no_recover_only_opens_the_incident_and_does_not_open_a_second(fresh_lab):
    watcher = start_watcher(fresh_lab, "--no-recover", "--hold", "0")
    try:
        wait_for_line(watcher, "watching orders")
        fresh_lab.mttr("break", "app-crash")
        wait_for_line(watcher, "not recovering (--no-recover)")
        # still failing: the open incident stops a second one
        wait_for_line(watcher, "is open: not recovering again")
    finally:
        out = stop(watcher)
    (record,) = incidents(fresh_lab)
    assert record["status"] != "resolved", out
    assert health(fresh_lab)[0] != 200


def test_listen_takes_an_alertmanager_webhook_and_dates_the_incident_at_its_start(fresh_lab):
    from ansible_collections.mttr.recovery.tests.support import alertmanager
    from ansible_collections.mttr.recovery.tests.support.processes import free_port

    port = free_port()
    env_token = {"MTTR_WATCH_TOKEN": "s3cret"}
    # probe rounds far apart: the alert is what detects the crash
    watcher = start_watcher(fresh_lab, "--interval", "60", "--listen", f"127.0.0.1:{port}", env=env_token)
    try:
        wait_for_line(watcher, "watching orders")
        url = f"http://127.0.0.1:{port}/"
        assert alertmanager.post(url, alertmanager.payload(alertmanager.alert()), token="wrong")[0] == 401
        assert alertmanager.post(url, b"{not json", token="s3cret")[0] == 400
        fresh_lab.mttr("break", "app-crash")
        started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
        firing = alertmanager.payload(alertmanager.alert(starts_at=started, failure_mode="app-crash"))
        assert alertmanager.post(url, firing, token="s3cret")[0] == 200
        seen = wait_for_line(watcher, "orders: recovery")
        assert "validated, incident resolved" in seen[-1], "".join(seen)
        # the same alert again (Alertmanager resends it): the hold-off, no second recovery
        assert alertmanager.post(url, firing, token="s3cret")[0] == 200
        wait_for_line(watcher, "holding off")
    finally:
        out = stop(watcher)
    (record,) = incidents(fresh_lab)
    assert record["status"] == "resolved", out
    assert abs(at(record["opened_at"]) - started.timestamp()) < 0.001, (record["opened_at"], started)
    assert health(fresh_lab)[0] == 200
