# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alerts in, recovery events out: the one parser of the ``mttr.recovery.alertmanager`` event source and of
``mttr watch --listen``.

Plain Python (no aiohttp, no Ansible). Two payload shapes are read:

**Alertmanager webhook, version 4**, as Alertmanager writes it::

    {"version": "4", "groupKey": "{}:{alertname=\\"OrdersDown\\"}", "truncatedAlerts": 0,
     "status": "firing", "receiver": "mttr", "groupLabels": {...}, "commonLabels": {...},
     "commonAnnotations": {...}, "externalURL": "http://alertmanager:9093",
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
                 "startsAt": "2026-11-27T10:15:03.48Z", "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "http://prometheus:9090/graph?...", "fingerprint": "3b15fd2a9c71fa8e"}]}

Each alert is read on its own: its labels are its own ``labels`` (``commonLabels`` leaves out every label the
alerts of a group do not all share, so it is never the source of an alert's service); ``endsAt`` is
``0001-01-01T00:00:00Z`` (Go's zero time) while an alert fires and reads as None; times are RFC 3339 with
0 to 9 fractional digits and ``Z`` or an offset, and come out as ISO 8601 UTC with microseconds.

**A generic JSON alert** (for senders that are not Alertmanager): one object, a list of them, or
``{"alerts": [...]}``, each object with any of::

    {"status": "firing" | "resolved",          # default firing
     "service": "orders",                       # else the service label, else the instance through the catalog
     "failure_mode": "app-crash",               # else the failure mode label or annotation
     "instance": "app1:8080",                   # else labels.instance
     "labels": {"alertname": "..."}, "annotations": {"summary": "..."},
     "startsAt" | "starts_at": "2026-11-27T10:15:03Z",   # default: when it was received
     "endsAt" | "ends_at": "...", "fingerprint": "..."}  # default: a hash of the labels and service

An object is Alertmanager's when it has ``version`` or ``groupKey``; its version must then be 4.

**Events.** ``parse_payload`` gives one normalized event per alert::

    {"kind": "firing" | "resolved", "service": "orders" | None, "failure_mode": "app-crash" | None,
     "fingerprint", "labels", "annotations", "starts_at", "ends_at" (None while firing), "group_key",
     "source": "alertmanager" | "generic", "alertname", "instance", "generator_url", "receiver",
     "service_from": "label" | "field" | "instance" | None, "catalogued": True | False | None,
     "service_candidates": [...]}

The service comes from the service label (``service`` unless told otherwise), else from the alert's
``instance`` label mapped through the catalog: a catalog host name, matched also as ``host:port``,
``http://host:port/path`` or a fully qualified name whose first part is the host. An instance on the hosts of
more than one service names none (``service_candidates`` lists them). ``catalogued`` says whether the service
is in the catalog (None without one). The failure mode comes from the ``failure_mode`` label, else the
``mttr_failure_mode`` annotation.

**State.** ``AlertState`` remembers the fingerprints seen firing (at most ``max_entries``, each for ``ttl``
seconds after it was last seen firing), so a resolved alert never seen firing (Alertmanager sends those
for alerts of a group that differ, or that were inhibited) can be told apart and dropped.

Malformed input raises ``PayloadError`` with a one-line message naming the field.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
import os
import re
import time

from ansible_collections.mttr.recovery.plugins.module_utils.catalog import CatalogError, find_cycle, tier_of

try:
    import yaml
except ImportError:  # only load_catalog needs it
    yaml = None

DEFAULT_SERVICE_LABEL = "service"
DEFAULT_FAILURE_MODE_LABEL = "failure_mode"
DEFAULT_FAILURE_MODE_ANNOTATION = "mttr_failure_mode"

FIRING = "firing"
RESOLVED = "resolved"

# Go's time.Time marshalled as RFC3339Nano: fractional seconds of 0 to 9 digits (trailing zeros trimmed),
# "Z" or a numeric offset.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_HOST_RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])\]")


class PayloadError(ValueError):
    """The payload cannot be read; the message is one line naming what is wrong."""


def _one_line(text):
    return " ".join(str(text).split())


def parse_time(value, field="time"):
    """ISO 8601 UTC text (microseconds) of an RFC 3339 time; None for None, "" and Go's zero time."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{field}: expected an RFC 3339 time, got {type(value).__name__} {value!r}")
    match = _RFC3339.match(value.strip())
    if not match:
        raise PayloadError(f"{field}: cannot read {value[:64]!r} as an RFC 3339 time such as 2026-11-27T10:15:03Z")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if int(year) <= 1:
        return None  # 0001-01-01T00:00:00Z: Go's zero time, "not set"
    offset = datetime.timedelta(0)
    if not zulu:
        offset = datetime.timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
    try:
        moment = datetime.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(9, "0")[:6]),
            tzinfo=datetime.timezone(offset),
        )
    except ValueError as exc:
        raise PayloadError(f"{field}: {value!r} is not a real time ({exc})") from None
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


# --- the catalog: host -> service ------------------------------------------------------------------------


def expand_host_pattern(pattern):
    """Host names of a catalog host entry; ``app[1:3]`` and ``node[a:c]`` ranges as Ansible writes them."""
    pattern = str(pattern)
    match = _HOST_RANGE.search(pattern)
    if not match:
        return [pattern]
    start, end = match.groups()
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        items = [str(number).zfill(width) for number in range(int(start), int(end) + 1)]
    elif start.isalpha() and end.isalpha():
        items = [chr(code) for code in range(ord(start), ord(end) + 1)]
    else:
        return [pattern]
    return [name for item in items for name in expand_host_pattern(head + item + tail)]


def host_index(catalog):
    """``{host name (lower case): [services]}`` from a catalog (service -> {hosts: {component: [names]}})."""
    index = {}
    for service in sorted(catalog or {}):
        entry = catalog[service] or {}
        for patterns in (entry.get("hosts") or {}).values():
            for pattern in [patterns] if isinstance(patterns, str) else patterns or []:
                for host in expand_host_pattern(pattern):
                    services = index.setdefault(host.lower(), [])
                    if service not in services:
                        services.append(service)
    return index


def instance_host(instance):
    """The host part of an ``instance`` label: ``host``, ``host:port``, ``[v6]:port`` or a URL."""
    text = str(instance or "").strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].split("?", 1)[0]
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    if text.startswith("["):
        return text[1:].split("]", 1)[0].lower()
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.lower()


def services_of_instance(instance, index):
    """The services whose catalog hosts the instance is on (by host name, or the first part of an FQDN)."""
    host = instance_host(instance)
    if not host:
        return []
    if host in index:
        return list(index[host])
    short = host.split(".", 1)[0]
    if short != host and not short.isdigit() and short in index:
        return list(index[short])
    return []


def load_catalog(path):
    """The services of a catalog: a ``...catalog.yml`` file (``plugin: mttr.recovery.service_catalog``, its
    ``services``) or an inventory directory, whose ``*catalog.yml`` / ``*catalog.yaml`` files are read in name
    order (a later file's service entry wins). Checked with the catalog's rules (tiers, no cycles)."""
    if yaml is None:
        raise CatalogError("reading a catalog file needs PyYAML")
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, name) for name in os.listdir(path) if name.endswith(("catalog.yml", "catalog.yaml"))
        )
        if not files:
            raise CatalogError(f"no *catalog.yml in {path}: give a catalog file or an inventory directory with one")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise CatalogError(f"catalog {path}: no such file or directory")
    services = {}
    for name in files:
        try:
            with open(name, encoding="utf-8") as handle:
                data = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CatalogError(f"cannot read the catalog {name}: {_one_line(exc)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("services") or {}, dict):
            raise CatalogError(f"catalog {name}: expected a mapping with 'services' (service -> its description)")
        for service, entry in (data.get("services") or {}).items():
            services[str(service)] = dict(entry or {})
    for service in services:
        tier_of(services, service)
    cycle = find_cycle(services, list(services))
    if cycle:
        raise CatalogError(f"dependency cycle in the catalog: {' -> '.join(cycle)}")
    return services


# --- payloads ------------------------------------------------------------------------------------------


class Parser:
    """Reads payloads into events; ``catalog`` (service -> description) maps instances and says which services
    it knows."""

    def __init__(
        self,
        catalog=None,
        service_label=DEFAULT_SERVICE_LABEL,
        failure_mode_label=DEFAULT_FAILURE_MODE_LABEL,
        failure_mode_annotation=DEFAULT_FAILURE_MODE_ANNOTATION,
        clock=now_utc,
    ):
        self.catalog = catalog
        self.index = host_index(catalog) if catalog else {}
        self.service_label = service_label or DEFAULT_SERVICE_LABEL
        self.failure_mode_label = failure_mode_label or DEFAULT_FAILURE_MODE_LABEL
        self.failure_mode_annotation = failure_mode_annotation or DEFAULT_FAILURE_MODE_ANNOTATION
        self.clock = clock

    def parse_body(self, body):
        """Events of a raw request body (bytes or text holding JSON)."""
        if isinstance(body, (bytes, bytearray)):
            try:
                body = bytes(body).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PayloadError(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        if not str(body).strip():
            raise PayloadError("the body is empty: expected a JSON alert payload")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise PayloadError(f"the body is not JSON: {_one_line(exc)}") from None
        return self.parse(payload)

    def parse(self, payload):
        """Events of a decoded payload (see the module's description for the shapes)."""
        if isinstance(payload, list):
            return [self._alert(item, f"[{number}]", {}) for number, item in enumerate(payload)]
        if not isinstance(payload, dict):
            raise PayloadError(f"expected a JSON object or list of alerts, got {_json_type(payload)}")
        if "version" in payload or "groupKey" in payload:
            return self._alertmanager(payload)
        if "alerts" in payload:
            alerts = payload["alerts"]
            if not isinstance(alerts, list):
                raise PayloadError(f"alerts: expected a list, got {_json_type(alerts)}")
            return [self._alert(item, f"alerts[{number}]", {}) for number, item in enumerate(alerts)]
        return [self._alert(payload, "alert", {})]

    def _alertmanager(self, payload):
        version = str(payload.get("version", ""))
        if version != "4":
            raise PayloadError(f"version: Alertmanager webhook version {version!r} is not read (only version 4)")
        alerts = payload.get("alerts")
        if not isinstance(alerts, list):
            raise PayloadError(f"alerts: expected a list, got {_json_type(alerts)}")
        group_key = payload.get("groupKey")
        context = {
            "source": "alertmanager",
            "group_key": None if group_key is None else str(group_key),
            "receiver": payload.get("receiver"),
            "external_url": payload.get("externalURL"),
        }
        events = []
        for number, alert in enumerate(alerts):
            where = f"alerts[{number}]"
            if isinstance(alert, dict):
                for key in ("labels", "startsAt"):
                    if key not in alert:
                        raise PayloadError(f"{where}.{key}: missing (Alertmanager sends it on every alert)")
            events.append(self._alert(alert, where, context))
        return events

    def _alert(self, alert, where, context):
        if not isinstance(alert, dict):
            raise PayloadError(f"{where}: expected an alert object, got {_json_type(alert)}")
        source = context.get("source", "generic")
        labels = _string_map(alert.get("labels"), f"{where}.labels")
        annotations = _string_map(alert.get("annotations"), f"{where}.annotations")
        status = alert.get("status", FIRING if source == "generic" else None)
        if status not in (FIRING, RESOLVED):
            raise PayloadError(f"{where}.status: expected 'firing' or 'resolved', got {status!r}")
        starts_at = parse_time(_first(alert, "startsAt", "starts_at"), f"{where}.startsAt")
        if starts_at is None:
            if source == "alertmanager":
                raise PayloadError(f"{where}.startsAt: an alert must say when it started")
            starts_at = self.clock()
        ends_at = parse_time(_first(alert, "endsAt", "ends_at"), f"{where}.endsAt")
        if status == FIRING:
            ends_at = None  # while firing, endsAt is Go's zero time or Alertmanager's own timeout guess
        instance = _text(alert.get("instance")) or labels.get("instance")

        service, service_from, candidates = None, None, []
        if _text(alert.get("service")):
            service, service_from = _text(alert["service"]), "field"
        elif labels.get(self.service_label):
            service, service_from = labels[self.service_label], "label"
        elif instance and self.index:
            candidates = services_of_instance(instance, self.index)
            if len(candidates) == 1:
                service, service_from = candidates[0], "instance"
        failure_mode = (
            _text(alert.get("failure_mode"))
            or labels.get(self.failure_mode_label)
            or annotations.get(self.failure_mode_annotation)
            or None
        )
        fingerprint = _text(alert.get("fingerprint")) or _fingerprint(labels, service)
        return {
            "kind": status,
            "service": service,
            "failure_mode": failure_mode,
            "fingerprint": fingerprint,
            "labels": labels,
            "annotations": annotations,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "group_key": context.get("group_key"),
            "source": source,
            "alertname": labels.get("alertname"),
            "instance": instance or None,
            "generator_url": _text(alert.get("generatorURL") or alert.get("generator_url")) or None,
            "receiver": context.get("receiver"),
            "service_from": service_from,
            "catalogued": None if self.catalog is None else (service is not None and service in self.catalog),
            "service_candidates": candidates if len(candidates) > 1 else [],
        }


def parse_payload(payload, catalog=None, service_label=DEFAULT_SERVICE_LABEL, **options):
    """Events of a decoded payload (a shortcut for ``Parser(...).parse``)."""
    return Parser(catalog=catalog, service_label=service_label, **options).parse(payload)


def _json_type(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _first(mapping, *keys):
    for key in keys:
        if mapping.get(key) not in (None, ""):
            return mapping[key]
    return None


def _text(value):
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


def _string_map(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object of names to text, got {_json_type(value)}")
    result = {}
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            raise PayloadError(f"{where}.{key}: expected text, got {_json_type(item)}")
        result[str(key)] = "" if item is None else str(item)
    return result


def _fingerprint(labels, service):
    text = json.dumps({"labels": labels, "service": service}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- state: which fingerprints fired ---------------------------------------------------------------------

NEW = "new"  # firing, not seen firing before (or forgotten)
REPEAT = "repeat"  # firing again: Alertmanager resends firing alerts every group_interval / repeat_interval
RESOLVE = "resolve"  # resolved, seen firing: a resolve candidate
UNSEEN = "unseen"  # resolved, never seen firing (or forgotten): log and drop


class AlertState:
    """Fingerprints seen firing, each kept ``ttl`` seconds after it was last seen firing, at most
    ``max_entries`` of them (the least recently seen go first). Not thread-safe: one event loop owns it."""

    def __init__(self, max_entries=10000, ttl=86400.0, clock=time.monotonic):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = int(max_entries)
        self.ttl = float(ttl)
        self.clock = clock
        self._firing = collections.OrderedDict()  # fingerprint -> (last seen, starts_at)

    def __len__(self):
        self._expire()
        return len(self._firing)

    def __contains__(self, fingerprint):
        self._expire()
        return fingerprint in self._firing

    def observe(self, event):
        """NEW, REPEAT, RESOLVE or UNSEEN for ``event`` (from ``Parser``), remembering or forgetting it."""
        self._expire()
        fingerprint = event["fingerprint"]
        if event["kind"] == FIRING:
            seen = fingerprint in self._firing
            self._firing[fingerprint] = (self.clock(), event.get("starts_at"))
            self._firing.move_to_end(fingerprint)
            while len(self._firing) > self.max_entries:
                self._firing.popitem(last=False)
            return REPEAT if seen else NEW
        if self._firing.pop(fingerprint, None) is None:
            return UNSEEN
        return RESOLVE

    def _expire(self):
        limit = self.clock() - self.ttl
        while self._firing:
            fingerprint, (seen, _starts) = next(iter(self._firing.items()))
            if seen >= limit:
                break
            del self._firing[fingerprint]
