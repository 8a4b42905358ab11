# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health probes: http, tcp, postgres, command and dns, run many at once.

Plain Python, no Ansible: the ``health_check`` module, the ``validate`` role (through the
module) and the ``mttr`` CLI share it.

Concurrency uses a thread pool, not asyncio: the probe kinds are blocking library calls
(http.client, psycopg, a command runner, getaddrinfo) with no asyncio equivalent in the
standard library, the work is I/O-bound so threads overlap it despite the GIL, and a pool
needs nothing beyond the standard library on the managed node. The pool size is the
concurrency limit.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import socket
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from ansible_collections.mttr.recovery.plugins.module_utils.pg import load_psycopg
from ansible_collections.mttr.recovery.plugins.module_utils.pg_replication import same_endpoint, standby_facts

HEALTHY = "healthy"
DEGRADED = "degraded"
DOWN = "down"

KINDS = ("http", "tcp", "postgres", "command", "dns")
COMMON = {
    "name": str,
    "kind": str,
    "timeout": (int, float),
    "retries": int,
    "backoff": (int, float),
    "latency_threshold_ms": (int, float),
    "critical": bool,
    "labels": dict,
}
# Per kind: (required fields, optional fields with their types)
FIELDS = {
    "http": (
        {"url": str},
        {
            "method": str,
            "status": list,
            "body_regex": str,
            "json_path": str,
            "json_value": object,
            "headers": dict,
            "body": str,
            "validate_certs": bool,
            "ca_path": str,
        },
    ),
    "tcp": ({"host": str, "port": int}, {}),
    "postgres": (
        {"host": str, "port": int},
        {
            "dbname": str,
            "user": str,
            "password": str,
            "query": str,
            "expected": object,
            "compare": str,
            "expect_role": str,
            "max_lag_bytes": int,
            "report_replication": bool,
            "cascade_from": list,
        },
    ),
    "command": ({"argv": list}, {"rc": int, "stdout_regex": str, "env": dict}),
    "dns": ({"host": str}, {"addresses": list, "family": str}),
}
COMPARATORS = {
    "eq": lambda actual, expected: actual == expected,
    "ne": lambda actual, expected: actual != expected,
    "ge": lambda actual, expected: _num(actual) >= _num(expected),
    "gt": lambda actual, expected: _num(actual) > _num(expected),
    "le": lambda actual, expected: _num(actual) <= _num(expected),
    "lt": lambda actual, expected: _num(actual) < _num(expected),
    "regex": lambda actual, expected: re.search(str(expected), actual) is not None,
}
DEFAULTS = {"timeout": 5.0, "retries": 0, "backoff": 0.2, "latency_threshold_ms": None, "critical": True}


class ProbeSpecError(ValueError):
    """A probe definition is wrong; the message names the probe."""


class ProbeFailed(Exception):
    """The probe ran and the service failed it (the message says how)."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or {}


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ProbeFailed(f"expected a number, got {value!r}") from None


# ----------------------------------------------------------------------------- definitions


def probe_label(index, spec):
    name = spec.get("name") if isinstance(spec, dict) else None
    return f"probe {index} ({name!r})" if name else f"probe {index}"


def default_name(spec):
    kind = spec["kind"]
    if kind == "http":
        return f"http {spec['url']}"
    if kind in ("tcp", "postgres"):
        return f"{kind} {spec['host']}:{spec['port']}"
    if kind == "command":
        return "command " + " ".join(str(a) for a in spec["argv"])[:60]
    return f"dns {spec['host']}"


def normalize(probes, defaults=None):
    """Validate probe definitions and apply defaults; raise ProbeSpecError naming the bad probe."""
    if not isinstance(probes, list):
        raise ProbeSpecError("probes must be a list of probe definitions")
    defaults = dict(defaults or {})
    result = []
    names = set()
    for index, raw in enumerate(probes):
        label = probe_label(index, raw)
        if not isinstance(raw, dict):
            raise ProbeSpecError(f"{label}: must be a dictionary, got {type(raw).__name__}")
        kind = raw.get("kind")
        if kind not in KINDS:
            raise ProbeSpecError(f"{label}: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        required, optional = FIELDS[kind]
        spec = dict(DEFAULTS)
        # None means "not set" (as it does for the module's options), so the defaults still apply
        spec.update({k: v for k, v in defaults.items() if v is not None and (k in COMMON or k in optional)})
        spec.update({key: value for key, value in raw.items() if value is not None})
        if kind == "command" and isinstance(spec.get("argv"), str):
            spec["argv"] = shlex.split(spec["argv"])
        for key in required:
            if spec.get(key) in (None, "", []):
                raise ProbeSpecError(f"{label}: kind {kind} needs '{key}'")
        allowed = dict(COMMON, **required, **optional)
        for key, value in spec.items():
            if key not in allowed:
                raise ProbeSpecError(f"{label}: unknown field '{key}' for kind {kind}")
            spec[key] = _coerce(label, key, value, allowed[key])
        if spec["timeout"] <= 0:
            raise ProbeSpecError(f"{label}: timeout must be positive, got {spec['timeout']}")
        if spec["retries"] < 0 or spec["backoff"] < 0:
            raise ProbeSpecError(f"{label}: retries and backoff cannot be negative")
        if spec["latency_threshold_ms"] is not None and spec["latency_threshold_ms"] <= 0:
            raise ProbeSpecError(f"{label}: latency_threshold_ms must be positive")
        if kind in ("tcp", "postgres") and not 0 < spec["port"] < 65536:
            raise ProbeSpecError(f"{label}: port {spec['port']} is out of range")
        if kind == "postgres":
            if load_psycopg() is None:
                # a configuration error of the task, never a verdict on the database
                raise ProbeSpecError(
                    f"{label}: postgres probes need the psycopg library in the Python that runs the module "
                    f"({sys.executable}): install it there (pip install 'psycopg[binary]'), or point "
                    "ansible_python_interpreter at a Python that has it"
                )
            if spec.get("compare", "eq") not in COMPARATORS:
                raise ProbeSpecError(f"{label}: compare must be one of {', '.join(COMPARATORS)}")
            if spec.get("expect_role") not in (None, "primary", "standby"):
                raise ProbeSpecError(f"{label}: expect_role must be primary or standby")
        if kind == "http":
            if urlsplit(spec["url"]).scheme not in ("http", "https"):
                raise ProbeSpecError(f"{label}: url must start with http:// or https://")
            spec["status"] = [_coerce(label, "status", code, int) for code in spec.get("status") or [200]]
            if spec.get("json_value") is not None and not spec.get("json_path"):
                raise ProbeSpecError(f"{label}: json_value needs json_path")
        for key in ("body_regex", "stdout_regex"):
            if spec.get(key):
                try:
                    re.compile(spec[key])
                except re.error as exc:
                    raise ProbeSpecError(f"{label}: {key} is not a valid regular expression: {exc}") from None
        if kind == "command" and spec.get("env"):
            # the runner hands env to subprocess, which only takes strings (YAML gives ints and bools)
            spec["env"] = {str(key): str(value) for key, value in spec["env"].items()}
        if kind == "dns" and spec.get("family", "any") not in ("any", "ipv4", "ipv6"):
            raise ProbeSpecError(f"{label}: family must be any, ipv4 or ipv6")
        spec.setdefault("name", None)
        spec["name"] = spec["name"] or default_name(spec)
        if spec["name"] in names:
            raise ProbeSpecError(f"{label}: name {spec['name']!r} is used by another probe")
        names.add(spec["name"])
        spec["index"] = index
        result.append(spec)
    return result


def _coerce(label, key, value, types):
    if value is None or types is object:
        return value
    if types in (int, float, (int, float)) and isinstance(value, str):
        try:
            value = int(value) if types is int else float(value)
        except ValueError:
            raise ProbeSpecError(f"{label}: '{key}' must be a number, got {value!r}") from None
    if types is bool and isinstance(value, str):
        if value.lower() in ("yes", "true", "on", "1"):
            return True
        if value.lower() in ("no", "false", "off", "0"):
            return False
    if isinstance(value, bool) and types is not bool:
        raise ProbeSpecError(f"{label}: '{key}' must be {_type_name(types)}, got a boolean")
    if not isinstance(value, types):
        raise ProbeSpecError(f"{label}: '{key}' must be {_type_name(types)}, got {type(value).__name__}")
    return value


def _type_name(types):
    if isinstance(types, tuple):
        return "a number"
    return {str: "a string", int: "an integer", list: "a list", dict: "a dictionary", bool: "a boolean"}[types]


# ----------------------------------------------------------------------------- probe kinds


def check_http(spec):
    url = urlsplit(spec["url"])
    timeout = spec["timeout"]
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=spec.get("ca_path"))
        if spec.get("validate_certs") is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        conn.request(spec.get("method") or "GET", path, body=spec.get("body"), headers=spec.get("headers") or {})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    details = {"status_code": response.status}
    if response.status not in spec["status"]:
        raise ProbeFailed(f"HTTP {response.status}, expected {', '.join(map(str, spec['status']))}", details)
    text = body.decode("utf-8", errors="replace")
    if spec.get("body_regex") and not re.search(spec["body_regex"], text):
        raise ProbeFailed(f"body does not match /{spec['body_regex']}/", details)
    if spec.get("json_path"):
        try:
            value = json_lookup(json.loads(text), spec["json_path"])
        except ValueError as exc:
            raise ProbeFailed(f"JSON path {spec['json_path']}: {exc}", details) from None
        details["json_value"] = value
        if spec.get("json_value") is not None and value != spec["json_value"]:
            raise ProbeFailed(f"JSON {spec['json_path']} is {value!r}, expected {spec['json_value']!r}", details)
    return details


def json_lookup(document, path):
    """Follow a dotted path (``a.b.0.c``) through decoded JSON."""
    value = document
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise ValueError(f"'{part}' not found")
    return value


def check_tcp(spec):
    with socket.create_connection((spec["host"], spec["port"]), timeout=spec["timeout"]):
        pass
    return {}


def check_postgres(spec):
    psycopg = load_psycopg()  # normalize() refused postgres probes without it
    params = {
        "host": spec["host"],
        "port": spec["port"],
        "dbname": spec.get("dbname") or "postgres",
        "connect_timeout": max(1, round(spec["timeout"])),
    }
    for key in ("user", "password"):
        if spec.get(key):
            params[key] = spec[key]
    details = {}
    try:
        with psycopg.connect(autocommit=True, **params) as conn:
            conn.execute(f"SET statement_timeout = {int(spec['timeout'] * 1000)}")
            row = conn.execute(spec.get("query") or "SELECT 1").fetchone()
            value = None if row is None else row[0]
            details["value"] = _plain(value)
            wants_replication = (
                spec.get("report_replication") or spec.get("expect_role") or spec.get("max_lag_bytes") is not None
            )
            if wants_replication:
                details.update(replication_facts(conn))
    except psycopg.Error as exc:
        raise ProbeFailed(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None
    check_upstream(spec, params, details, psycopg)
    if spec.get("expected") is not None:
        compare = spec.get("compare") or "eq"
        actual = "" if value is None else str(_plain(value))
        if not COMPARATORS[compare](actual, str(spec["expected"])):
            raise ProbeFailed(f"query returned {actual!r}, expected {compare} {spec['expected']!r}", details)
    role = details.get("role")
    if spec.get("expect_role") and role != spec["expect_role"]:
        raise ProbeFailed(f"node is a {role}, expected a {spec['expect_role']}", details)
    lag = details.get("lag_bytes")
    if spec.get("max_lag_bytes") is not None and lag is not None and lag > spec["max_lag_bytes"]:
        raise ProbeFailed(f"replication lag {lag} B exceeds {spec['max_lag_bytes']} B", details)
    return details


def replication_facts(conn):
    """Role and lag: a standby's receive-to-replay gap and its upstream, or a primary's largest standby lag."""
    in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    if in_recovery:
        facts = standby_facts(conn)
        upstream = None if facts["upstream_port"] is None else f"{facts['upstream_host']}:{facts['upstream_port']}"
        return {
            "role": "standby",
            "in_recovery": True,
            "lag_bytes": facts["lag_bytes"],
            "receiver": facts["receiver"],
            "upstream": upstream,
        }
    row = conn.execute(
        "SELECT count(*), COALESCE(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0) FROM pg_stat_replication"
    ).fetchone()
    return {"role": "primary", "in_recovery": False, "standbys": int(row[0]), "lag_bytes": int(row[1])}


def check_upstream(spec, params, details, psycopg):
    """A standby is healthy only when it streams from a primary (or a declared ``cascade_from``).

    A node streaming from itself receives nothing new and would lose every write made since if it
    were promoted; one streaming from another standby is a cascade nobody declared.
    """
    upstream = details.get("upstream")
    if details.get("role") != "standby" or not upstream:
        return
    host, _sep, port = upstream.rpartition(":")
    if same_endpoint((host, port), (spec["host"], spec["port"])):
        raise ProbeFailed(
            f"standby replicates from itself ({upstream}): it receives nothing from the primary; point its "
            "primary_conninfo at the primary (mttr.recovery.failover action=rejoin)",
            details,
        )
    for allowed in spec.get("cascade_from") or []:
        allowed_host, _sep, allowed_port = str(allowed).rpartition(":")
        if allowed_port.isdigit() and same_endpoint((host, port), (allowed_host, allowed_port)):
            details["upstream_role"] = "cascade"
            return
    try:
        with psycopg.connect(autocommit=True, **dict(params, host=host, port=int(port))) as conn:
            upstream_in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    except psycopg.Error as exc:
        details["upstream_role"] = f"unknown ({str(exc).strip().splitlines()[0] if str(exc).strip() else 'error'})"
        return
    details["upstream_role"] = "standby" if upstream_in_recovery else "primary"
    if upstream_in_recovery:
        raise ProbeFailed(
            f"standby streams from {upstream}, which is itself a standby and not in cascade_from: it follows the "
            "wrong upstream; point its primary_conninfo at the primary",
            details,
        )


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def check_command(spec, run_command):
    """Run a command through ``run_command(argv, env) -> (rc, stdout, stderr)``.

    The runner is injected (AnsibleModule.run_command in the module) so this engine never spawns
    processes itself; coreutils' ``timeout`` enforces the probe's timeout (exit code 124).
    """
    if run_command is None:
        raise ProbeFailed("command probes need a command runner")
    argv = ["timeout", "--kill-after=1", f"{spec['timeout']:g}"] + [str(arg) for arg in spec["argv"]]
    rc, stdout, stderr = run_command(argv, spec.get("env"))
    if rc == 124:
        raise socket.timeout(f"timed out after {spec['timeout']} s")
    if rc == 127:
        raise ProbeFailed(f"command not found: {spec['argv'][0]}")
    expected = spec.get("rc", 0)
    details = {"rc": rc, "stdout": stdout[-2000:]}
    if rc != expected:
        tail = (stderr or stdout).strip().splitlines()
        raise ProbeFailed(f"exit code {rc}, expected {expected}" + (f": {tail[-1]}" if tail else ""), details)
    if spec.get("stdout_regex") and not re.search(spec["stdout_regex"], stdout):
        raise ProbeFailed(f"output does not match /{spec['stdout_regex']}/", details)
    return details


def check_dns(spec):
    family = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}.get(spec.get("family") or "any", socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(spec["host"], None, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeFailed(f"cannot resolve {spec['host']}: {exc.strerror or exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    details = {"addresses": addresses}
    expected = spec.get("addresses")
    if expected and not set(expected) <= set(addresses):
        missing = sorted(set(expected) - set(addresses))
        raise ProbeFailed(f"{spec['host']} resolves to {', '.join(addresses)}; missing {', '.join(missing)}", details)
    return details


CHECKS = {"http": check_http, "tcp": check_tcp, "postgres": check_postgres, "dns": check_dns}


# ----------------------------------------------------------------------------- running


def run_probe(spec, run_command=None, sleep=time.sleep, clock=time.monotonic):
    """Run one probe with retries and exponential backoff; return its result dict."""
    attempts = 0
    error = None
    details = {}
    latency_ms = None
    delay = spec["backoff"]
    while attempts <= spec["retries"]:
        if attempts:
            sleep(delay)
            delay *= 2
        attempts += 1
        details = {}
        started = clock()
        try:
            if spec["kind"] == "command":
                details = check_command(spec, run_command)
            else:
                details = CHECKS[spec["kind"]](spec) or {}
            latency_ms = (clock() - started) * 1000
            error = None
            break
        except ProbeFailed as exc:
            latency_ms = (clock() - started) * 1000
            error, details = str(exc), exc.details
        except (socket.timeout, TimeoutError) as exc:
            latency_ms = (clock() - started) * 1000
            error = f"timed out after {spec['timeout']} s" if str(exc) in ("", "timed out") else str(exc)
        except OSError as exc:
            latency_ms = (clock() - started) * 1000
            error = exc.strerror or str(exc) or type(exc).__name__
        except (http.client.HTTPException, ValueError) as exc:
            latency_ms = (clock() - started) * 1000
            error = f"{type(exc).__name__}: {exc}"
    status = DOWN if error else HEALTHY
    threshold = spec.get("latency_threshold_ms")
    if status == HEALTHY and threshold and latency_ms > threshold:
        status = DEGRADED
        error = f"latency {latency_ms:.1f} ms exceeds {threshold} ms"
    return {
        "name": spec["name"],
        "kind": spec["kind"],
        "index": spec["index"],
        "status": status,
        "latency_ms": round(latency_ms, 3) if latency_ms is not None else None,
        "attempts": attempts,
        "error": error,
        "critical": spec["critical"],
        "labels": spec.get("labels") or {},
        "details": details,
    }


def run_probes(specs, concurrency=32, run_command=None):
    """Run normalized probes concurrently (at most ``concurrency`` at once), results in input order."""
    if not specs:
        return []
    workers = max(1, min(int(concurrency), len(specs)))
    if workers == 1:
        return [run_probe(spec, run_command) for spec in specs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
        return list(pool.map(lambda spec: run_probe(spec, run_command), specs))


def percentile(values, fraction):
    """Nearest-rank percentile of a list of numbers (None when empty)."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(results):
    """Counts, overall status and latency percentiles of a round of probe results.

    Overall: ``down`` when any critical probe is down; ``degraded`` when any probe is degraded or
    a non-critical probe is down; otherwise ``healthy``.
    """
    counts = {HEALTHY: 0, DEGRADED: 0, DOWN: 0}
    for result in results:
        counts[result["status"]] += 1
    if any(r["status"] == DOWN and r["critical"] for r in results):
        overall = DOWN
    elif counts[DEGRADED] or counts[DOWN]:
        overall = DEGRADED
    else:
        overall = HEALTHY
    latencies = [r["latency_ms"] for r in results]
    return {
        "status": overall,
        "counts": counts,
        "total": len(results),
        "latency_p50_ms": percentile(latencies, 0.50),
        "latency_p95_ms": percentile(latencies, 0.95),
    }


def failing(results):
    """One line per probe that is not healthy: its name and why."""
    return [f"{r['name']}: {r['status']} ({r['error']})" for r in results if r["status"] != HEALTHY]


def check(
    specs,
    concurrency=32,
    wait_for=None,
    deadline=60.0,
    min_consecutive=1,
    interval=1.0,
    run_command=None,
    sleep=time.sleep,
    clock=time.monotonic,
):
    """Probe once, or until healthy ``min_consecutive`` rounds in a row or ``deadline`` seconds pass."""
    started = clock()
    rounds = 0
    streak = 0
    while True:
        rounds += 1
        results = run_probes(specs, concurrency, run_command)
        summary = summarize(results)
        streak = streak + 1 if summary["status"] == HEALTHY else 0
        elapsed = clock() - started
        done = wait_for != HEALTHY or streak >= min_consecutive or elapsed + interval > deadline
        if done:
            summary.update(
                probes=results,
                rounds=rounds,
                consecutive_healthy=streak,
                elapsed_s=round(elapsed, 3),
                deadline_reached=bool(wait_for == HEALTHY and streak < min_consecutive),
            )
            return summary
        sleep(interval)


def format_lines(result, width=40):
    """A health_check result as aligned text lines: a header, one line per probe, the overall line."""
    lines = [f"{'STATUS':<9} {'PROBE':<{width}} {'LATENCY':>10}  DETAIL"]
    for probe in result.get("probes", []):
        latency = "-" if probe.get("latency_ms") is None else f"{probe['latency_ms']:.1f} ms"
        detail = probe.get("error") or ", ".join(
            f"{k}={v}" for k, v in sorted(probe.get("details", {}).items()) if k != "stdout"
        )
        lines.append(f"{probe['status']:<9} {probe['name'][:width]:<{width}} {latency:>10}  {detail}")
    p50, p95 = (result.get(key) if result.get(key) is not None else "-" for key in ("latency_p50_ms", "latency_p95_ms"))
    counts = result.get("counts", {})
    lines.append(
        f"overall: {result.get('status')} ({counts.get(HEALTHY, 0)} healthy, {counts.get(DEGRADED, 0)} degraded, "
        f"{counts.get(DOWN, 0)} down; p50 {p50} ms, p95 {p95} ms)"
    )
    return lines
