#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: health_check
short_description: Probe a service concurrently and say whether it is healthy, degraded or down
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - Runs many probes at once (http, tcp, postgres, command, dns), each with a timeout, retries
    with exponential backoff and an optional latency threshold above which the probe counts as
    C(degraded).
  - Optionally re-probes until every probe is healthy for O(min_consecutive) rounds in a row, or
    until O(deadline) seconds have passed.
  - Overall status is C(down) when any critical probe is down, C(degraded) when any probe is
    degraded or a non-critical probe is down, and C(healthy) otherwise.
  - Read-only. It never changes anything, so it always reports RV(ignore:changed=false).
options:
  probes:
    description:
      - The probes to run. Each needs O(probes[].kind) and the fields of that kind.
      - Fields that do not apply to a probe's kind are refused.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: A name for the probe, unique in the call. Defaults to the kind and its target.
        type: str
      kind:
        description: What to probe.
        type: str
        required: true
        choices: [http, tcp, postgres, command, dns]
      timeout:
        description: Seconds one attempt may take. Defaults to 5.
        type: float
      retries:
        description: Extra attempts after a failure. Defaults to 0.
        type: int
      backoff:
        description: Seconds before the first retry; doubles with each retry. Defaults to 0.2.
        type: float
      latency_threshold_ms:
        description: A healthy probe slower than this counts as C(degraded).
        type: float
      critical:
        description: Whether this probe being down makes the whole check C(down). Defaults to true.
        type: bool
      labels:
        description: Free-form labels returned with the probe's result (service, host, tier...).
        type: dict
      url:
        description: (http) The URL to request.
        type: str
      method:
        description: (http) HTTP method. Defaults to C(GET).
        type: str
      status:
        description: (http) Expected status codes. Defaults to C([200]).
        type: list
        elements: int
      body_regex:
        description: (http) A regular expression the response body must match.
        type: str
      json_path:
        description: (http) Dotted path into the JSON response (C(status), C(items.0.id)).
        type: str
      json_value:
        description: (http) Expected value at O(probes[].json_path).
        type: raw
      headers:
        description: (http) Request headers.
        type: dict
      body:
        description: (http) Request body.
        type: str
      validate_certs:
        description: (http) Verify the server's TLS certificate. Defaults to true.
        type: bool
      ca_path:
        description: (http) CA bundle to verify the server's certificate with.
        type: path
      host:
        description: (tcp, postgres, dns) Host to connect to, or (dns) the name to resolve.
        type: str
      port:
        description: (tcp, postgres) Port to connect to.
        type: int
      dbname:
        description: (postgres) Database. Defaults to C(postgres).
        type: str
      user:
        description: (postgres) Role to connect as.
        type: str
      password:
        description: (postgres) Password of O(probes[].user).
        type: str
      query:
        description: (postgres) Query whose first column of the first row is the value. Defaults to C(SELECT 1).
        type: str
      expected:
        description: (postgres) Expected value of the query, compared as text (or as numbers for ordering comparisons).
        type: raw
      compare:
        description: (postgres) How to compare the value with O(probes[].expected). Defaults to C(eq).
        type: str
        choices: [eq, ne, ge, gt, le, lt, regex]
      expect_role:
        description: (postgres) The node must be a C(primary) or a C(standby).
        type: str
        choices: [primary, standby]
      max_lag_bytes:
        description:
          - (postgres) Replication lag above which the probe is down.
          - A standby's lag is its receive-to-replay gap; a primary's is its largest standby's lag.
        type: int
      report_replication:
        description:
          - (postgres) Return the node's role and replication lag, and for a standby the upstream it streams from.
          - A standby streaming from itself, or from another standby not in O(probes[].cascade_from), is down -
            it receives nothing from the primary. Its upstream is asked whether it is a primary with the
            probe's credentials.
        type: bool
      cascade_from:
        description:
          - (postgres) Standbys (C(host:port)) this standby may stream from (a declared cascade).
        type: list
        elements: str
      argv:
        description: (command) The command, as a list or a string split like a shell would (no shell runs it).
        type: raw
      rc:
        description: (command) Expected exit code. Defaults to 0.
        type: int
      stdout_regex:
        description: (command) A regular expression the output must match.
        type: str
      env:
        description: (command) Environment variables set for the command, on top of the inherited ones.
        type: dict
      addresses:
        description: (dns) Addresses the name must resolve to (all of them, among others).
        type: list
        elements: str
      family:
        description: (dns) Address family to resolve. Defaults to C(any).
        type: str
        choices: [any, ipv4, ipv6]
  defaults:
    description: Values applied to every probe that does not set them (for example C(timeout), C(retries)).
    type: dict
    default: {}
  concurrency:
    description:
      - How many probes run at the same time (threads).
      - 100 keeps 1000 probes of 20 ms targets near 2 s; see bench/README.md.
    type: int
    default: 100
  wait_for:
    description:
      - C(none) probes once.
      - C(healthy) re-probes every O(interval) seconds until the check is healthy O(min_consecutive)
        times in a row, or until O(deadline) passes.
    type: str
    choices: [none, healthy]
    default: none
  deadline:
    description: Seconds to keep re-probing when O(wait_for=healthy).
    type: float
    default: 60
  min_consecutive:
    description: Healthy rounds in a row needed when O(wait_for=healthy).
    type: int
    default: 1
  interval:
    description: Seconds between rounds when O(wait_for=healthy).
    type: float
    default: 1
  fail_on:
    description:
      - Fail the task when the overall status is C(down), or C(degraded) (or worse).
      - C(never) only reports.
    type: str
    choices: [down, degraded, never]
    default: never
attributes:
  check_mode:
    support: full
    description: Probing is read-only, so it runs in check mode too.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to compare.
requirements:
  - psycopg >= 3.1 on the host running the module, for postgres probes only
notes:
  - Probes run from the host the module runs on. To probe a fleet from one place, gather the
    probes and run one task with O(probes) on the controller (C(run_once) and C(delegate_to)).
"""

EXAMPLES = r"""
- name: Probe the orders service
  mttr.recovery.health_check:
    probes:
      - name: app health through the load balancer
        kind: http
        url: http://127.0.0.1:24320/health
        json_path: status
        json_value: ok
        latency_threshold_ms: 250
      - name: write endpoint
        kind: tcp
        host: 127.0.0.1
        port: 24310
      - name: primary takes queries
        kind: postgres
        host: 127.0.0.1
        port: 24301
        dbname: orders
        user: mttr
        password: "{{ pg_password }}"
        query: SELECT count(*) FROM orders
        expected: 1
        compare: ge
        expect_role: primary
    defaults:
      timeout: 2
      retries: 2
    fail_on: down

- name: Wait up to 30 s for three healthy rounds in a row
  mttr.recovery.health_check:
    probes: "{{ service_probes }}"
    wait_for: healthy
    deadline: 30
    min_consecutive: 3
    interval: 0.5
    fail_on: degraded
"""

RETURN = r"""
status:
  description: Overall status of the last round.
  returned: always
  type: str
  sample: degraded
counts:
  description: How many probes are healthy, degraded and down.
  returned: always
  type: dict
  sample: {"healthy": 2, "degraded": 1, "down": 0}
total:
  description: Number of probes.
  returned: always
  type: int
  sample: 3
latency_p50_ms:
  description: Median probe latency in milliseconds.
  returned: always
  type: float
  sample: 1.9
latency_p95_ms:
  description: 95th percentile of probe latency in milliseconds.
  returned: always
  type: float
  sample: 12.4
probes:
  description: One result per probe, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The probe's name.
      type: str
    kind:
      description: The probe's kind.
      type: str
    status:
      description: C(healthy), C(degraded) or C(down).
      type: str
    latency_ms:
      description: Duration of the last attempt.
      type: float
    attempts:
      description: Attempts made.
      type: int
    error:
      description: Why the probe is not healthy, or null.
      type: str
    details:
      description: What the probe saw (HTTP status, query value, role and lag, addresses...).
      type: dict
  sample:
    - {"name": "write endpoint", "kind": "tcp", "status": "healthy", "latency_ms": 0.4, "attempts": 1, "error": null}
failing:
  description: One line per probe that is not healthy, naming it and why.
  returned: always
  type: list
  elements: str
  sample: ["primary takes queries: down (connection refused)"]
rounds:
  description: Rounds of probing done.
  returned: always
  type: int
  sample: 1
elapsed_s:
  description: Seconds spent probing.
  returned: always
  type: float
  sample: 0.42
deadline_reached:
  description: Whether O(wait_for=healthy) gave up at the deadline.
  returned: always
  type: bool
  sample: false
"""

from ansible_collections.mttr.recovery.plugins.module_utils.module import MttrModule
from ansible_collections.mttr.recovery.plugins.module_utils.probes import (
    DEGRADED,
    DOWN,
    HEALTHY,
    ProbeSpecError,
    check,
    failing,
    normalize,
)

PROBE_OPTIONS = {
    "name": {"type": "str"},
    "kind": {"type": "str", "required": True, "choices": ["http", "tcp", "postgres", "command", "dns"]},
    "timeout": {"type": "float"},
    "retries": {"type": "int"},
    "backoff": {"type": "float"},
    "latency_threshold_ms": {"type": "float"},
    "critical": {"type": "bool"},
    "labels": {"type": "dict"},
    "url": {"type": "str"},
    "method": {"type": "str"},
    "status": {"type": "list", "elements": "int"},
    "body_regex": {"type": "str"},
    "json_path": {"type": "str"},
    "json_value": {"type": "raw"},
    "headers": {"type": "dict"},
    "body": {"type": "str"},
    "validate_certs": {"type": "bool"},
    "ca_path": {"type": "path"},
    "host": {"type": "str"},
    "port": {"type": "int"},
    "dbname": {"type": "str"},
    "user": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "query": {"type": "str"},
    "expected": {"type": "raw"},
    "compare": {"type": "str", "choices": ["eq", "ne", "ge", "gt", "le", "lt", "regex"]},
    "expect_role": {"type": "str", "choices": ["primary", "standby"]},
    "max_lag_bytes": {"type": "int"},
    "report_replication": {"type": "bool"},
    "cascade_from": {"type": "list", "elements": "str"},
    "argv": {"type": "raw"},
    "rc": {"type": "int"},
    "stdout_regex": {"type": "str"},
    "env": {"type": "dict"},
    "addresses": {"type": "list", "elements": "str"},
    "family": {"type": "str", "choices": ["any", "ipv4", "ipv6"]},
}

FAIL_LEVELS = {"never": (), "down": (DOWN,), "degraded": (DOWN, DEGRADED)}


def main():
    module = MttrModule(
        argument_spec={
            "probes": {"type": "list", "elements": "dict", "required": True, "options": PROBE_OPTIONS},
            "defaults": {"type": "dict", "default": {}},
            "concurrency": {"type": "int", "default": 100},
            "wait_for": {"type": "str", "choices": ["none", "healthy"], "default": "none"},
            "deadline": {"type": "float", "default": 60},
            "min_consecutive": {"type": "int", "default": 1},
            "interval": {"type": "float", "default": 1},
            "fail_on": {"type": "str", "choices": ["down", "degraded", "never"], "default": "never"},
        },
        supports_check_mode=True,
    )
    params = module.params
    for key in ("concurrency", "min_consecutive"):
        if params[key] < 1:
            module.fail_json(msg=f"{key} must be at least 1, got {params[key]}")
    for key in ("deadline", "interval"):
        if params[key] < 0:
            module.fail_json(msg=f"{key} cannot be negative, got {params[key]}")

    probes = [{key: value for key, value in probe.items() if value is not None} for probe in params["probes"]]
    try:
        specs = normalize(probes, params["defaults"])
    except ProbeSpecError as exc:
        module.fail_json(msg=str(exc))

    result = check(
        specs,
        run_command=module.run,
        concurrency=params["concurrency"],
        wait_for=HEALTHY if params["wait_for"] == "healthy" else None,
        deadline=params["deadline"],
        min_consecutive=params["min_consecutive"],
        interval=params["interval"],
    )
    result["failing"] = failing(result["probes"])
    result["changed"] = False
    counts = result["counts"]
    summary = f"{result['status']}: {counts[HEALTHY]} healthy, {counts[DEGRADED]} degraded, {counts[DOWN]} down"
    if result["status"] in FAIL_LEVELS[params["fail_on"]]:
        module.fail_json(msg=f"{summary}; failing: " + "; ".join(result["failing"]), **result)
    module.exit_json(msg=summary, **result)


if __name__ == "__main__":
    main()
