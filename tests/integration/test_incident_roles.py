"""The communicate and postmortem roles through ansible-runner: webhooks to a local receiver, the status page,
the review of a recorded incident, and no secret anywhere it could leak."""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path

import ansible_runner
import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from ansible_collections.mttr.recovery.tests.support.processes import free_port
from ansible_collections.mttr.recovery.tests.support.webhooks import Receiver
from conftest import REPO

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"


@pytest.fixture
def receiver(tmp_path):
    started = Receiver(tmp_path / "received.jsonl")
    yield started
    started.stop()


def run(tmp_path, playbook, ident, extravars, callback=False):
    envvars = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"}
    if callback:
        envvars.update(ANSIBLE_CALLBACKS_ENABLED="mttr.recovery.timeline", MTTR_INCIDENT_STORE=extravars["store"])
    (tmp_path / "runner").mkdir(exist_ok=True)
    return ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        playbook=str(PLAYBOOKS / playbook),
        extravars=extravars,
        envvars=envvars,
        quiet=True,
        ident=ident,
    )


def tree_bytes(root):
    for path in Path(root).rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def notes(store, incident_id):
    return [entry["message"] for entry in store.timeline(incident_id) if entry["kind"] == "note"]


def test_ears_updates_reach_json_and_slack_webhooks(tmp_path, receiver):
    store_path = str(tmp_path / "store" / "incidents.sqlite")
    store = IncidentStore(store_path)
    incident_id = store.open(["orders-api", "orders-db"], "SEV2", "Orders API returns 502")[0]["id"]
    token = "tok-" + secrets.token_hex(8)
    status_page = tmp_path / "www" / "index.html"
    extravars = {
        "incident_id": incident_id,
        "store": store_path,
        "status_page": str(status_page),
        "message": "We are failing over to the standby database.",
        "webhooks": [
            {"name": "ops-json", "url": f"{receiver.url}/hooks/json", "kind": "json", "token": token},
            {"name": "ops-slack", "url": f"{receiver.url}/hooks/slack", "kind": "slack"},
        ],
    }
    first = run(tmp_path, "communicate.yml", "explain", extravars)
    assert first.status == "successful" and first.rc == 0, first.stdout.read()

    by_path = {post["path"]: post for post in receiver.received}
    assert sorted(by_path) == ["/hooks/json", "/hooks/slack"]
    generic = by_path["/hooks/json"]
    assert generic["authorization"] == f"Bearer {token}" and generic["content_type"] == "application/json"
    body = generic["body"]
    assert (body["incident"], body["phase"], body["status"], body["severity"]) == (
        incident_id,
        "explain",
        "open",
        "SEV2",
    )
    assert body["services"] == ["orders-api", "orders-db"]
    assert body["title"] == f"[SEV2] {incident_id} Explain: Orders API returns 502"
    assert body["text"].startswith("We are investigating a SEV2 incident affecting orders-api, orders-db since ")
    assert "We are failing over to the standby database." in body["text"]
    assert body["text"].endswith("Next update within 60 minutes.")
    slack = by_path["/hooks/slack"]
    assert slack["authorization"] is None
    blocks = slack["body"]["blocks"]
    assert slack["body"]["text"] == body["title"] + "\n" + body["text"]
    assert [block["type"] for block in blocks] == ["header", "section", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": body["title"]}
    assert blocks[1]["text"] == {"type": "mrkdwn", "text": body["text"]}
    assert blocks[2]["elements"][0]["text"].startswith(f"{incident_id} · SEV2 · open")

    assert notes(store, incident_id) == [
        "status update [explain] to webhook ops-json: posted: HTTP 200",
        "status update [explain] to webhook ops-slack: posted: HTTP 200",
    ]
    page = status_page.read_text()
    assert "1 active incident affecting orders-api, orders-db" in page and incident_id in page
    # the token and URLs stay out of everything ansible-runner kept
    for path, content in tree_bytes(tmp_path / "runner" / "artifacts"):
        assert token.encode() not in content, f"token found in {path}"
        assert b"/hooks/json" not in content, f"webhook URL found in {path}"

    # a second run for the same phase posts nothing and changes nothing
    again = run(tmp_path, "communicate.yml", "explain-again", extravars)
    assert again.status == "successful" and len(receiver.received) == 2
    assert not again.stats["changed"], again.stats

    # the incident moves on: the acknowledge phase is posted
    store.transition(incident_id, "acknowledged", note="on-call has it")
    acked = run(tmp_path, "communicate.yml", "acknowledge", dict(extravars, message=""))
    assert acked.status == "successful" and len(receiver.received) == 4
    text = receiver.received[2]["body"]["text"]
    assert receiver.received[2]["body"]["phase"] == "acknowledge"
    assert text.startswith("We have acknowledged the SEV2 incident affecting orders-api, orders-db")
    assert "We are sorry for the disruption." in text
    assert "on-call has it" in status_page.read_text()


def test_a_failing_webhook_does_not_fail_the_play(tmp_path, receiver):
    store_path = str(tmp_path / "store" / "incidents.sqlite")
    store = IncidentStore(store_path)
    incident_id = store.open(["search"], "SEV4", "Search is slow")[0]["id"]
    closed = free_port()
    extravars = {
        "incident_id": incident_id,
        "store": store_path,
        "status_page": str(tmp_path / "status.html"),
        "webhooks": [
            {"name": "broken", "url": f"{receiver.url}/hooks/secret-path/fail", "kind": "slack"},
            {"name": "gone", "url": f"http://127.0.0.1:{closed}/hooks/secret-path", "kind": "json"},
            {"name": "fine", "url": f"{receiver.url}/hooks/ok"},
        ],
    }
    result = run(tmp_path, "communicate.yml", "failing", extravars)
    assert result.status == "successful" and result.rc == 0, result.stdout.read()
    assert [post["path"] for post in receiver.received] == ["/hooks/secret-path/fail", "/hooks/ok"]
    assert receiver.received[1]["body"]["text"] == "Investigating: Search is slow (search)."
    recorded = notes(store, incident_id)
    assert recorded[0] == "status update [explain] to webhook broken: failed: HTTP 500"
    assert re.fullmatch(r"status update \[explain\] to webhook gone: failed: .*[Cc]onnection refused.*", recorded[1])
    assert recorded[2] == "status update [explain] to webhook fine: posted: HTTP 200"
    assert not any("secret-path" in note or "127.0.0.1" in note for note in recorded)
    assert (tmp_path / "status.html").exists()
    # the failed webhooks are tried again on the next run; the delivered one is not
    retried = run(tmp_path, "communicate.yml", "retry", extravars)
    assert retried.status == "successful"
    assert [post["path"] for post in receiver.received][2:] == ["/hooks/secret-path/fail"]


def test_no_log_secret_stays_out_of_store_artifacts_and_review(tmp_path):
    store_path = str(tmp_path / "store" / "incidents.sqlite")
    store = IncidentStore(store_path)
    incident_id = store.open(["orders-db"], "SEV2", "Primary down")[0]["id"]
    store.transition(incident_id, "acknowledged")
    password = "Pw-" + secrets.token_hex(12)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(password)
    review_dir = tmp_path / "reviews"
    result = run(
        tmp_path,
        "postmortem_no_log.yml",
        "postmortem",
        {
            "mttr_incident_id": incident_id,
            "store": store_path,
            "secret_file": str(secret_file),
            "review_dir": str(review_dir),
        },
        callback=True,
    )
    assert result.status == "successful" and result.rc == 0, result.stdout.read()

    md = review_dir / f"{incident_id}.md"
    html = review_dir / f"{incident_id}.html"
    assert sorted(path.name for path in review_dir.iterdir()) == sorted(
        [md.name, html.name, f"{incident_id}.timeline.png"]
    )
    text = md.read_text()
    assert "| localhost | Use the database password without showing it | changed |" in text
    assert "output hidden by no_log" in text
    assert f"({incident_id}.timeline.png)" in text
    assert re.search(r'<img class="chart" [^>]*src="data:image/png;base64,', html.read_text())
    assert store.get(incident_id)["status"] == "resolved"

    secret = password.encode()
    places = [tmp_path / "store", tmp_path / "runner" / "artifacts", review_dir]
    checked = 0
    for place in places:
        for path, content in tree_bytes(place):
            checked += 1
            assert secret not in content, f"the password is in {path}"
    assert checked >= 6
