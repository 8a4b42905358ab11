"""Alertmanager webhook payloads (version 4) shaped as Alertmanager 0.27 sends them, and a poster."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import urllib.error
import urllib.request

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339_nano(moment: datetime.datetime) -> str:
    """Go's RFC3339Nano: up to 9 fractional digits with trailing zeros trimmed, 'Z' for UTC."""
    moment = moment.astimezone(datetime.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def fingerprint(labels: dict) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def alert(
    service: str | None = "orders",
    status: str = "firing",
    starts_at: datetime.datetime | None = None,
    ends_at: datetime.datetime | None = None,
    failure_mode: str | None = None,
    instance: str = "app1:8080",
    alertname: str = "ServiceDown",
    **labels: str,
) -> dict:
    labels = {"alertname": alertname, "instance": instance, "severity": "critical", **labels}
    if service is not None:
        labels["service"] = service
    if failure_mode:
        labels["failure_mode"] = failure_mode
    labels = dict(sorted(labels.items()))
    starts_at = starts_at or datetime.datetime.now(datetime.UTC)
    ends = rfc3339_nano(ends_at or datetime.datetime.now(datetime.UTC)) if status == "resolved" else GO_ZERO_TIME
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{service or instance} is down", "description": f"{instance} answers no probe."},
        "startsAt": rfc3339_nano(starts_at),
        "endsAt": ends,
        "generatorURL": "http://prometheus.lab:9090/graph?g0.expr=probe_success+%3D%3D+0&g0.tab=1",
        "fingerprint": fingerprint(labels),
    }


def payload(*alerts: dict, receiver: str = "mttr-eda") -> dict:
    """A webhook message grouped by alertname: commonLabels keeps only the labels every alert shares."""
    shared = dict(alerts[0]["labels"]) if alerts else {}
    for one in alerts[1:]:
        shared = {key: value for key, value in shared.items() if one["labels"].get(key) == value}
    common_annotations = dict(alerts[0]["annotations"]) if alerts else {}
    for one in alerts[1:]:
        common_annotations = {k: v for k, v in common_annotations.items() if one["annotations"].get(k) == v}
    group = {"alertname": shared["alertname"]} if "alertname" in shared else {}
    return {
        "receiver": receiver,
        "status": "firing" if any(one["status"] == "firing" for one in alerts) else "resolved",
        "alerts": list(alerts),
        "groupLabels": group,
        "commonLabels": shared,
        "commonAnnotations": common_annotations,
        "externalURL": "http://alertmanager.lab:9093",
        "version": "4",
        "groupKey": "{}:{" + ",".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
    }


def post(
    url: str,
    body: dict | bytes | str,
    token: str | None = None,
    hmac_secret: str | None = None,
    hmac_header: str = "X-Hub-Signature-256",
    headers: dict | None = None,
    timeout: float = 10,
) -> tuple[int, str]:
    """POST as Alertmanager's webhook notifier does (JSON, 'Authorization: Bearer'); (status, body text)."""
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    request_headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.27.0", **(headers or {})}
    if token is not None:
        request_headers["Authorization"] = f"Bearer {token}"
    if hmac_secret is not None:
        request_headers[hmac_header] = "sha256=" + hmac.new(hmac_secret.encode(), data, hashlib.sha256).hexdigest()
    request = urllib.request.Request(url, data=data, headers=request_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
