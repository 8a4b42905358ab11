"""The mttr.recovery.alertmanager event source alone: its ``main()`` serving on a free loopback port in an
asyncio loop of its own, with a real ``asyncio.Queue``, loaded the way ansible-rulebook loads it
(``runpy.run_path``), and real HTTP requests."""

from __future__ import annotations

import asyncio
import datetime
import json
import runpy
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.mttr.recovery.tests.support.alertmanager import alert, payload, post

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
SOURCE = REPO / "extensions" / "eda" / "plugins" / "event_source" / "alertmanager.py"
TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Source:
    """main(queue, args) running in a thread's event loop until stopped."""

    def __init__(self, queue_size: int = 0, **args):
        self.module = runpy.run_path(str(SOURCE))
        self.port = free_port()
        self.args = {"port": self.port, **args}
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue | None = None
        self.task = None
        self.error: BaseException | None = None
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.queue = asyncio.Queue(maxsize=queue_size)
            self.task = self.loop.create_task(self.module["main"](self.queue, self.args))
            ready.set()
            try:
                self.loop.run_until_complete(self.task)
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # surfaced by the test
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the source did not start listening")

    def events(self) -> list[dict]:
        async def drain():
            found = []
            while not self.queue.empty():
                found.append(self.queue.get_nowait())
            return found

        return asyncio.run_coroutine_threadsafe(drain(), self.loop).result(5)

    def stop(self):
        if self.task is not None and not self.task.done():
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.loop.close()


@pytest.fixture
def source():
    started = []

    def start(**args):
        started.append(Source(**args))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def test_firing_alert_is_queued_with_its_fields(source):
    src = source(token=TOKEN, catalog=str(REPO / "inventories" / "lab"))
    starts = datetime.datetime(2026, 11, 27, 10, 15, 3, 481516, tzinfo=datetime.UTC)
    body = payload(alert("orders", starts_at=starts, failure_mode="app-crash"))
    status, text = post(src.url, body, token=TOKEN)
    assert (status, json.loads(text)) == (200, {"queued": 1, "dropped": 0})
    (event,) = src.events()
    got = event["alert"]
    assert (got["kind"], got["service"], got["failure_mode"], got["catalogued"], got["repeat"]) == (
        "firing",
        "orders",
        "app-crash",
        True,
        False,
    )
    assert got["starts_at"] == "2026-11-27T10:15:03.481516+00:00"
    assert got["ends_at"] is None
    assert got["fingerprint"] == body["alerts"][0]["fingerprint"]
    assert got["labels"] == body["alerts"][0]["labels"]
    assert got["group_key"] == body["groupKey"]
    assert event["meta"] == {"endpoint": "/alerts", "remote": "127.0.0.1", "decision": "new"}
    assert "hosts" not in event["meta"]  # would limit the playbook's hosts in ansible-rulebook

    # the same alert again (Alertmanager's repeat) is queued again, marked as a repeat
    assert post(src.url, body, token=TOKEN)[0] == 200
    (again,) = src.events()
    assert again["alert"]["repeat"] is True and again["meta"]["decision"] == "repeat"


def test_service_from_the_instance_through_the_catalog(source):
    src = source(catalog=str(REPO / "inventories" / "lab" / "service_catalog.yml"))
    status, _text = post(src.url, payload(alert(None, instance="pg1:5432", alertname="PostgresDown")))
    assert status == 200
    (event,) = src.events()
    assert (event["alert"]["service"], event["alert"]["service_from"]) == ("orders-db", "instance")


def test_resolved_after_firing_is_a_resolve_candidate_and_never_seen_is_dropped(source):
    src = source(token=TOKEN)
    firing = alert("orders")
    assert post(src.url, payload(firing), token=TOKEN)[0] == 200
    src.events()
    resolved = dict(firing, status="resolved", endsAt="2026-11-27T10:16:41.09Z")
    status, text = post(src.url, payload(resolved), token=TOKEN)
    assert (status, json.loads(text)) == (200, {"queued": 1, "dropped": 0})
    (event,) = src.events()
    assert (event["alert"]["kind"], event["alert"]["ends_at"]) == (
        "resolve-candidate",
        "2026-11-27T10:16:41.090000+00:00",
    )
    # a resolved alert never seen firing (and the same resolve a second time) is dropped, not queued
    never = alert("orders", status="resolved", instance="app9:8080")
    status, text = post(src.url, payload(never, resolved), token=TOKEN)
    assert (status, json.loads(text)) == (200, {"queued": 0, "dropped": 2})
    assert src.events() == []


def test_wrong_or_missing_token_is_401_and_nothing_is_queued(source):
    src = source(token=TOKEN)
    body = payload(alert("orders"))
    assert post(src.url, body, token="wrong")[0] == 401
    assert post(src.url, body)[0] == 401
    assert post(src.url, body, headers={"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert src.events() == []
    assert post(src.url, body, token=TOKEN)[0] == 200


@pytest.mark.parametrize(
    "garbage",
    [b"{not json", b"", b"[1, 2]", b'{"version": "4", "alerts": [{"labels": {}}]}', b"\xff\xfe", b'"x"'],
)
def test_garbage_is_400_and_the_source_still_answers(source, garbage):
    src = source(token=TOKEN)
    status, text = post(src.url, garbage, token=TOKEN)
    assert status == 400, text
    assert json.loads(text)["error"]
    assert post(src.url, payload(alert("orders")), token=TOKEN)[0] == 200
    assert len(src.events()) == 1


def test_oversized_body_is_400(source):
    src = source(max_body_bytes=4096)
    big = payload(*[alert("orders", instance=f"app{n}:8080") for n in range(40)])
    assert len(json.dumps(big)) > 4096
    status, text = post(src.url, big)
    assert status == 400 and "larger than 4096 bytes" in json.loads(text)["error"]
    # without a Content-Length (chunked), the limit holds too
    chunks = iter([json.dumps(big).encode()[i : i + 1000] for i in range(0, len(json.dumps(big)), 1000)])
    request = urllib.request.Request(src.url, data=chunks, method="POST", headers={"Transfer-Encoding": "chunked"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("a chunked oversized body was taken")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
    assert src.events() == []
    assert post(src.url, payload(alert("orders")))[0] == 200


def test_hmac_signature_good_and_bad(source):
    src = source(hmac_secret="hmac-key", hmac_header="X-Mttr-Signature")
    body = payload(alert("orders"))
    assert post(src.url, body, hmac_secret="hmac-key", hmac_header="X-Mttr-Signature")[0] == 200
    assert post(src.url, body, hmac_secret="other-key", hmac_header="X-Mttr-Signature")[0] == 401
    assert post(src.url, body)[0] == 401
    assert len(src.events()) == 1


def test_a_full_queue_answers_503_so_alertmanager_retries(source):
    src = source(queue_size=1, queue_timeout=0.2)
    assert post(src.url, payload(alert("orders")))[0] == 200
    status, text = post(src.url, payload(alert("orders-db", instance="pg1:5432")))
    assert status == 503 and "full" in json.loads(text)["error"]
    assert len(src.events()) == 1
    assert post(src.url, payload(alert("orders-db", instance="pg1:5432")))[0] == 200


def test_bad_options_fail_at_start_naming_the_option():
    module = runpy.run_path(str(SOURCE))

    async def start(args):
        await asyncio.wait_for(module["main"](asyncio.Queue(), args), 5)

    with pytest.raises(ValueError, match="option port is required"):
        asyncio.run(start({}))
    with pytest.raises(ValueError, match="option max_body_bytes: must be more than 0"):
        asyncio.run(start({"port": free_port(), "max_body_bytes": 0}))
    with pytest.raises(ValueError, match="option catalog: catalog /nonexistent: no such file"):
        asyncio.run(start({"port": free_port(), "catalog": "/nonexistent"}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ValueError, match=r"cannot listen on 127\.0\.0\.1:"):
            asyncio.run(start({"port": taken.getsockname()[1]}))
