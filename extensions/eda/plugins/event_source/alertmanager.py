# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mttr.recovery.alertmanager: an ansible-rulebook event source that receives Alertmanager webhooks.

An aiohttp server that takes Alertmanager webhook payloads (version 4) and generic JSON alerts by POST on
any path, and puts on the rulebook's queue one event per alert, parsed by the collection's engine
(``plugins/module_utils/alertmanager.py``, the same one ``mttr watch --listen`` uses)::

    {"alert": {"kind": "firing", "service": "orders", "failure_mode": "app-crash", "fingerprint": "...",
               "labels": {...}, "annotations": {...}, "starts_at": "2026-11-27T10:15:03.481516+00:00",
               "ends_at": null, "group_key": "...", "source": "alertmanager", "alertname": "ServiceDown",
               "instance": "app1:8080", "catalogued": true, "repeat": false, ...},
     "meta": {"endpoint": "/", "remote": "127.0.0.1", "decision": "new"}}

- A **firing** alert is an event of ``kind: firing`` each time it comes (Alertmanager resends firing alerts
  every ``group_interval``/``repeat_interval``; ``repeat`` is true when its fingerprint was already seen
  firing). The rulebook's throttle and the recover playbook's per-service lock keep that to one recovery.
- A **resolved** alert whose fingerprint was seen firing is an event of ``kind: resolve-candidate``: a hint,
  never a recovery (nor a resolution: the recovery's validation resolves its incident).
- A resolved alert never seen firing (Alertmanager sends those when the alerts of a group differ, or were
  inhibited; or this source restarted since) is logged and dropped.

Answers: 200 with ``{"queued": N, "dropped": M}``; 400 and a log line for a body that is not a readable
alert payload or is larger than ``max_body_bytes``; 401 for a missing or wrong bearer token or HMAC
signature; 503 (so Alertmanager retries) only when an event cannot be queued within ``queue_timeout``.
``GET /healthz`` answers 200 without a token.

Options (``args``):

``host`` (str, default ``127.0.0.1``)
    Address to listen on. ``0.0.0.0`` for every interface.
``port`` (int, required)
    TCP port to listen on.
``token`` (str)
    Bearer token every POST must carry (``Authorization: Bearer TOKEN``, as Alertmanager's
    ``webhook_configs[].http_config.authorization.credentials`` sends it); compared in constant time.
``hmac_secret`` (str)
    Secret of an HMAC-SHA256 of the body that every POST must carry in ``hmac_header``, as hex, with or
    without a ``sha256=`` prefix.
``hmac_header`` (str, default ``X-Hub-Signature-256``)
    Header of the HMAC signature.
``max_body_bytes`` (int, default 1048576)
    Larger bodies are refused with 400.
``service_label`` (str, default ``service``)
    Label naming the alert's service; without it the service is found from the ``instance`` label through
    the catalog.
``failure_mode_label`` (str, default ``failure_mode``) / ``failure_mode_annotation`` (str, default
``mttr_failure_mode``)
    Where an alert names its failure mode (the label first).
``catalog`` (str)
    A service catalog file (``...catalog.yml``, ``plugin: mttr.recovery.service_catalog``) or an inventory
    directory holding one: maps instances to services and sets ``catalogued``. Read once, at start.
``resolved`` (bool, default true)
    Put resolve-candidate events on the queue; false drops resolved alerts after noting them.
``state_max`` (int, default 10000) / ``state_ttl`` (seconds, default 86400)
    How many firing fingerprints are remembered, and for how long after last seen firing.
``queue_timeout`` (seconds, default 5)
    How long to wait for room on a full queue before answering 503.

Example::

    sources:
      - mttr.recovery.alertmanager:
          port: 5050
          token: "{{ mttr_eda_token }}"
          catalog: inventories/prod
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import sys
from typing import Any

from aiohttp import web

try:
    from ansible_collections.mttr.recovery.plugins.module_utils import alertmanager as engine
except ImportError:  # the collection is installed on a path Python does not search: the one it is in
    sys.path.append(os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 7)))
    from ansible_collections.mttr.recovery.plugins.module_utils import alertmanager as engine

logger = logging.getLogger("mttr.recovery.alertmanager")

RESOLVE_CANDIDATE = "resolve-candidate"


class OptionError(ValueError):
    """A source option is wrong; the message names it."""


def _number(args: dict[str, Any], name: str, default: float, kind: type = int) -> Any:
    value = args.get(name, default)
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise OptionError(f"option {name}: expected a number, got {value!r}") from None
    if value <= 0:
        raise OptionError(f"option {name}: must be more than 0, got {value!r}")
    return value


def _flag(args: dict[str, Any], name: str, default: bool) -> bool:
    value = args.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class Receiver:
    """The webhook handler: authenticate, read, parse, remember, queue."""

    def __init__(self, queue: asyncio.Queue, args: dict[str, Any]):
        if args.get("port") in (None, ""):
            raise OptionError("option port is required")
        self.queue = queue
        self.host = str(args.get("host") or "127.0.0.1")
        self.port = _number(args, "port", 0)
        token = args.get("token")
        self.token = str(token).encode() if token not in (None, "") else None
        secret = args.get("hmac_secret")
        self.hmac_secret = str(secret).encode() if secret not in (None, "") else None
        self.hmac_header = str(args.get("hmac_header") or "X-Hub-Signature-256")
        self.max_body_bytes = _number(args, "max_body_bytes", 1048576)
        self.queue_timeout = _number(args, "queue_timeout", 5.0, float)
        self.resolved = _flag(args, "resolved", True)
        catalog = None
        if args.get("catalog"):
            try:
                catalog = engine.load_catalog(args["catalog"])
            except engine.CatalogError as exc:
                raise OptionError(f"option catalog: {exc}") from None
        self.parser = engine.Parser(
            catalog=catalog,
            service_label=args.get("service_label"),
            failure_mode_label=args.get("failure_mode_label"),
            failure_mode_annotation=args.get("failure_mode_annotation"),
        )
        self.state = engine.AlertState(
            max_entries=_number(args, "state_max", 10000), ttl=_number(args, "state_ttl", 86400.0, float)
        )

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "firing": len(self.state)})

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.remote or "?"
        if self.token is not None and not self._token_ok(request):
            logger.warning("401 for %s %s from %s: missing or wrong bearer token", request.method, request.path, peer)
            return _answer(401, "missing or wrong bearer token")
        try:
            body = await self._read(request)
        except _TooLarge:
            logger.warning("400 for a body from %s larger than %d bytes", peer, self.max_body_bytes)
            return _answer(400, f"body larger than {self.max_body_bytes} bytes")
        if self.hmac_secret is not None and not self._signature_ok(request, body):
            logger.warning("401 for a body from %s: missing or wrong %s signature", peer, self.hmac_header)
            return _answer(401, f"missing or wrong {self.hmac_header} signature")
        try:
            events = self.parser.parse_body(body)
        except engine.PayloadError as exc:
            logger.warning("400 for a payload from %s: %s", peer, exc)
            return _answer(400, str(exc))
        queued = dropped = 0
        for alert in events:
            decision = self.state.observe(alert)
            name = f"{alert['alertname'] or 'alert'} {alert['fingerprint']} ({alert['service'] or 'no service'})"
            if decision == engine.UNSEEN:
                logger.info("resolved %s was never seen firing: dropped", name)
                dropped += 1
                continue
            if decision == engine.RESOLVE:
                if not self.resolved:
                    logger.info("resolved %s: dropped (resolved: false)", name)
                    dropped += 1
                    continue
                alert = dict(alert, kind=RESOLVE_CANDIDATE)
            alert = dict(alert, repeat=decision == engine.REPEAT)
            event = {"alert": alert, "meta": {"endpoint": request.path, "remote": peer, "decision": decision}}
            try:
                await asyncio.wait_for(self.queue.put(event), self.queue_timeout)
            except TimeoutError:
                logger.error(
                    "503: the event queue stayed full for %ss; %s not queued (%d of %d queued)",
                    self.queue_timeout,
                    name,
                    queued,
                    len(events),
                )
                return _answer(503, "the event queue is full: retry later")
            queued += 1
            logger.info("%s %s: queued (%s)", alert["kind"], name, decision)
        return web.json_response({"queued": queued, "dropped": dropped})

    def _token_ok(self, request: web.Request) -> bool:
        scheme, _space, given = request.headers.get("Authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token)

    def _signature_ok(self, request: web.Request, body: bytes) -> bool:
        given = request.headers.get(self.hmac_header, "").strip()
        if given.lower().startswith("sha256="):
            given = given[len("sha256=") :]
        expected = hmac.new(self.hmac_secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(given.lower().encode(), expected.encode())

    async def _read(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise _TooLarge
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)


class _TooLarge(Exception):
    pass


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """Serve until cancelled (ansible-rulebook's source plugin entry point)."""
    receiver = Receiver(queue, args)
    # the body is read by the handler with its own limit (400, not aiohttp's 413)
    app = web.Application(client_max_size=receiver.max_body_bytes + 1)
    app.router.add_get("/healthz", receiver.health)
    app.router.add_post("/{endpoint:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, receiver.host, receiver.port)
        try:
            await site.start()
        except OSError as exc:
            raise OptionError(f"cannot listen on {receiver.host}:{receiver.port}: {exc.strerror or exc}") from None
        logger.info(
            "listening on http://%s:%s for Alertmanager webhooks (token %s, hmac %s, catalog %s)",
            receiver.host,
            receiver.port,
            "on" if receiver.token else "off",
            "on" if receiver.hmac_secret else "off",
            "with " + ", ".join(sorted(receiver.parser.catalog)) if receiver.parser.catalog else "none",
        )
        await asyncio.Future()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    # python alertmanager.py PORT: print the events it would queue
    class _PrintQueue(asyncio.Queue):
        async def put(self, item: Any) -> None:
            print(json.dumps(item, indent=2))

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_PrintQueue(), {"port": int(sys.argv[1]) if len(sys.argv) > 1 else 5050}))
