"""Alert -> recovery through Event-Driven Ansible: ansible-rulebook, started by the test with the collection's
rulebook (``mttr.recovery.recover_on_alert``) and event source (``mttr.recovery.alertmanager``), against a
real lab. Proven from the incident store and ansible-rulebook's own output."""

from __future__ import annotations

import datetime
import json
import os
import random
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ansible_collections.mttr.recovery.tests.support.alertmanager import alert, payload, post
from conftest import REPO, VENV_BIN
from mttr.lab.config import port_in_use

pytestmark = pytest.mark.integration

RULEBOOK = "mttr.recovery.recover_on_alert"
TOKEN = "eda-test-token"


def listener_port() -> int:
    """A free port below Linux's ephemeral range (a TIME_WAIT there could refuse the bind)."""
    for _attempt in range(200):
        port = random.randrange(20000, 32000)
        if not port_in_use(port):
            return port
    raise RuntimeError("no free port for the event source")


def session_pids(sid: int) -> list[int]:
    """Processes of the session ``sid`` (ansible-rulebook runs as a session leader: all it starts is there)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[3]) == sid:
                found.append(int(entry))
    return found


class Rulebook:
    """ansible-rulebook with the collection's rulebook, its output in a file."""

    def __init__(self, lab, tmp_path: Path, rulebook: str = RULEBOOK):
        self.port = listener_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = tmp_path / "ansible-rulebook.log"
        variables = tmp_path / "eda-vars.yml"
        variables.write_text(
            yaml.safe_dump(
                {
                    "mttr_eda_port": self.port,
                    "mttr_eda_token": TOKEN,
                    "mttr_eda_catalog": str(REPO / "inventories" / "lab"),
                }
            )
        )
        env = dict(
            os.environ,
            MTTR_HOME=str(lab.home),
            ANSIBLE_CALLBACKS_ENABLED="mttr.recovery.timeline",
            ANSIBLE_NOCOLOR="1",
            PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        )
        command = [str(VENV_BIN / "ansible-rulebook"), "-r", rulebook, "-i", str(REPO / "inventories" / "lab")]
        command += ["-e", str(variables), "-v"]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started = time.monotonic()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        self.listening = time.monotonic() - self.started
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("the event source never listened:\n" + self.output())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def plays(self, name: str = "Triage") -> int:
        return self.output().count(f"PLAY [{name}]")

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; ansible-rulebook and everything it started must be gone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
                raise AssertionError("ansible-rulebook did not stop on SIGTERM within 60 s") from None
        deadline = time.monotonic() + 10
        while session_pids(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = session_pids(self.process.pid)
        if left:
            os.killpg(self.process.pid, signal.SIGKILL)
        assert not left, f"processes left by ansible-rulebook: {left}"


def store(lab):
    from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore

    return IncidentStore(str(lab.home / "incidents.sqlite"))


def incidents(lab):
    with store(lab) as opened:
        return opened.list()


def timeline(lab, incident_id):
    with store(lab) as opened:
        return opened.timeline(incident_id)


def steps(entries, step):
    return [(e["action"], e["result"]) for e in entries if e["kind"] == "step" and e["action"] == step]


def wait_for(predicate, timeout: float, what: str, rulebook: Rulebook):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        assert rulebook.process.poll() is None, "ansible-rulebook exited:\n" + rulebook.output()[-6000:]
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout} s; ansible-rulebook said:\n" + rulebook.output()[-6000:])


def test_a_firing_alert_recovers_its_service_once(fresh_lab, tmp_path):
    rulebook = Rulebook(fresh_lab, tmp_path)
    try:
        # bad input first: the source refuses it and stays up
        body = payload(alert("orders", failure_mode="app-crash"))
        assert post(rulebook.url, body, token="wrong")[0] == 401
        assert post(rulebook.url, body)[0] == 401
        status, text = post(rulebook.url, b'{"version": "4", "alerts": [', token=TOKEN)
        assert status == 400, text
        assert post(rulebook.url, b"\x00garbage", token=TOKEN)[0] == 400
        assert incidents(fresh_lab) == []

        fresh_lab.mttr("break", "app-crash")
        broke = datetime.datetime.now(datetime.UTC)
        firing = payload(alert("orders", starts_at=broke, failure_mode="app-crash"))
        posted = time.monotonic()
        assert post(rulebook.url, firing, token=TOKEN) == (200, json.dumps({"queued": 1, "dropped": 0}))
        # an alert storm: Alertmanager (or several of them) sends the same group again and again
        for _again in range(5):
            assert post(rulebook.url, firing, token=TOKEN)[0] == 200
        assert time.monotonic() - posted < 1.5

        def resolved():
            return [i for i in incidents(fresh_lab) if i["services"] == ["orders"] and i["status"] == "resolved"]

        (record,) = wait_for(resolved, 180, "no resolved incident for orders", rulebook)
        took = time.monotonic() - posted
        wait_for(lambda: rulebook.plays("Close") >= 1, 60, "the recover playbook did not finish", rulebook)
        time.sleep(3)  # room for a second run, were one started

        assert len(incidents(fresh_lab)) == 1, incidents(fresh_lab)
        assert rulebook.plays("Triage") == 1, rulebook.output()[-6000:]
        entries = timeline(fresh_lab, record["id"])
        assert steps(entries, "orders:restart") == [("orders:restart", "started"), ("orders:restart", "completed")]
        # the incident is dated from the alert's startsAt (mttr_detected_at), not from the playbook's start
        assert record["opened_at"] == broke.isoformat(timespec="microseconds"), record
        with urllib.request.urlopen(fresh_lab.lab.cfg.state["app"]["public_url"] + "/health", timeout=5) as response:
            assert response.status == 200
        print(
            f"alert POST -> incident resolved: {took:.1f} s (source listening {rulebook.listening:.1f} s after start)"
        )

        # resolved: a resolve candidate, never a recovery
        resolved_alert = dict(firing["alerts"][0], status="resolved", endsAt="2026-11-27T10:16:41.09Z")
        assert post(rulebook.url, payload(resolved_alert), token=TOKEN) == (200, '{"queued": 1, "dropped": 0}')
        wait_for(lambda: "resolved at" in rulebook.output(), 30, "the resolve candidate was not noted", rulebook)
        # and a resolved alert never seen firing is dropped by the source
        never = alert("orders", status="resolved", instance="app1:9999")
        assert post(rulebook.url, payload(never), token=TOKEN) == (200, '{"queued": 0, "dropped": 1}')
        time.sleep(3)
        assert rulebook.plays("Triage") == 1
        assert len(incidents(fresh_lab)) == 1

        # garbage again after all that: 400, and the source still answers
        assert post(rulebook.url, b"]]]", token=TOKEN)[0] == 400
        with urllib.request.urlopen(f"http://127.0.0.1:{rulebook.port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        rulebook.stop()
    assert rulebook.process.returncode is not None
