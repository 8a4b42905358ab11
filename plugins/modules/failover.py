#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: failover
short_description: Fail over PostgreSQL (fence, promote, prove a write) or switch HAProxy traffic
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - C(postgres) with O(nodes) - the whole failover in one call, as the M(mttr.recovery.failover) role
    runs it - probes every node at once, picks the failed (or, with O(switchover=true), the live)
    primary as the old one and the reachable standby holding the most WAL as the new one, takes the old
    one out of every O(load_balancers) backend, then fences, promotes and proves a write as below, and
    readies the new primary in the backends. When a writable primary answers, nothing is promoted and
    the backends are only made to point at it. Each Ansible task costs about 0.4 s, the failover
    itself about 0.2 s, so one call is what keeps the first write within a few seconds.
  - C(postgres) with O(old) and O(new) - checks the candidate is a standby and what promoting it can
    lose (see below), fences the old primary first (read-only and sessions terminated when it answers;
    C(standby.signal) and a C(primary_conninfo) to the new primary in its data directory, so it can only
    ever come back as a standby; then stopped), promotes the candidate with C(pg_promote()), and proves
    the new primary takes writes. When the old primary can be neither reached nor its data directory
    written, promotion still proceeds and RV(fence.pending) is true.
  - C(haproxy) - through the runtime API, readies the new server, puts the old one in maintenance,
    shuts its sessions, and waits until HAProxy reports the new server C(UP).
  - C(route53) - through boto3, UPSERTs O(record_name) to O(new)'s C(host) and waits until the change
    is C(INSYNC).
  - Failing over to what is already active changes nothing.
  - O(action=fence) (postgres) fences O(old) on its own host - C(standby.signal) and a
    C(primary_conninfo) to O(new) in O(old)'s C(data_dir) - for when the failover could not reach it
    (RV(fence.pending)). Run it on that host (C(delegate_to)).
  - O(action=rejoin) (postgres) turns the fenced old primary O(old) into a standby of O(new) so redundancy
    is restored. A node already streaming from O(new) is left alone; a standby streaming from elsewhere is
    repointed; otherwise it is stopped, C(pg_rewind) runs from the new primary (after a C(CHECKPOINT) there)
    and C(standby.signal) is written. With O(start_command) it is then started, and the call returns only
    once it streams from O(new) (sender host and port), O(new) lists it in C(pg_stat_replication), and a
    transaction committed on O(new) after the rejoin has been replayed on it.
  - What a promotion can lose is the old primary's WAL the candidate never received (WAL received but not
    yet replayed is replayed before promotion ends). It is measured against the old primary's last position -
    live when it answers, else the end of the WAL in its data directory (C(pg_controldata), C(pg_waldump)),
    else the end the candidate's still-streaming WAL receiver last heard of - and returned as RV(exposure).
    With synchronous replication and the candidate a standby every commit waited for, no acknowledged
    write can be lost. The promotion is refused unless O(force=true) when more than
    O(max_lag_bytes) of acknowledged writes may be lost, or when that cannot be told at all (old primary
    silent, its data directory elsewhere, replication not known to be synchronous).
  - A new primary whose C(synchronous_standby_names) is set would block every commit while no standby is
    left, so it is set to empty (ALTER SYSTEM) and the rejoin restores the configured value once a standby streams.
options:
  action:
    description:
      - C(failover) moves the primary role or the traffic.
      - C(fence) (postgres) fences O(old) in its data directory on this host.
      - C(rejoin) (postgres) makes O(old) a standby of O(new).
    type: str
    choices: [failover, fence, rejoin]
    default: failover
  provider:
    description: What to fail over.
    type: str
    required: true
    choices: [postgres, haproxy, route53]
  nodes:
    description:
      - (postgres, failover) Every database node; the module chooses O(old) and O(new) among them.
        Mutually exclusive with O(old) and O(new).
    type: list
    elements: dict
    suboptions: &node
      name:
        description: Its name - its server name in the HAProxy backends (O(load_balancers), or C(haproxy)).
        type: str
        required: true
      host:
        description: (postgres) Host.
        type: str
        default: 127.0.0.1
      port:
        description: (postgres) Port.
        type: int
        default: 5432
      data_dir:
        description: (postgres) Its data directory, when reachable from this host (fencing, rejoin, WAL end).
        type: path
  switchover:
    description: (postgres, with O(nodes)) Fail over although a writable primary answers (planned switchover).
    type: bool
    default: false
  repoint_standbys:
    description:
      - (postgres, with O(nodes)) After the failover, make every other reachable standby stream from the
        new primary (C(ALTER SYSTEM SET primary_conninfo), reloaded; it follows the new timeline).
    type: bool
    default: true
  load_balancers:
    description:
      - (postgres, with O(nodes)) HAProxy backends whose servers are the nodes (by name). The old primary
        is put in maintenance before it is fenced, the new one readied once it takes writes.
    type: list
    elements: dict
    default: []
    suboptions:
      admin_socket:
        description: Path of the runtime API socket.
        type: path
        required: true
      backend:
        description: The backend.
        type: str
        required: true
  old:
    description: The failed (or current) primary or server. Required unless O(nodes) is given.
    type: dict
    suboptions: *node
  new:
    description: The standby to promote, or the server to send traffic to. Required unless O(nodes) is given.
    type: dict
    suboptions: *node
  pg_bin:
    description: (postgres) Directory of pg_ctl, to stop a fenced primary.
    type: path
  os_user:
    description: (postgres) The operating system user PostgreSQL runs as (owner of the data directory).
    type: str
  max_lag_bytes:
    description:
      - (postgres) Refuse to promote a standby that never received more than this many bytes of the old
        primary's WAL, unless replication was synchronous.
    type: int
    default: 16777216
  force:
    description:
      - (postgres) Promote even when acknowledged writes beyond O(max_lag_bytes) may be lost, or when the
        possible loss cannot be told. The result's RV(exposure) and RV(risk) say what was accepted.
    type: bool
    default: false
  start_command:
    description:
      - (postgres, rejoin) How to start the rewound node (a list of arguments, run on this host). Without it
        the node is left stopped and RV(proven) is false.
    type: list
    elements: str
  rejoin_timeout:
    description: (postgres, rejoin) Seconds to wait for the started node to stream from O(new) and replay a commit.
    type: int
    default: 60
  admin_socket:
    description: (haproxy) Path of the runtime API socket.
    type: path
  backend:
    description: (haproxy) The backend whose servers are switched.
    type: str
  hosted_zone_id:
    description: (route53) The hosted zone.
    type: str
  record_name:
    description: (route53) The record to point at O(new)'s C(host).
    type: str
  record_type:
    description: (route53) Record type.
    type: str
    default: A
  ttl:
    description: (route53) TTL of the record.
    type: int
    default: 30
  waiter_delay:
    description: (route53) Seconds between polls while waiting for INSYNC.
    type: int
    default: 2
extends_documentation_fragment:
  - mttr.recovery.postgres
  - mttr.recovery.aws
attributes:
  check_mode:
    support: full
    description: Runs the pre-checks and reports the plan; changes nothing.
  diff_mode:
    support: full
    description: (haproxy) Before and after name the servers taking traffic.
notes:
  - The AWS options are for the C(route53) provider, the login options for C(postgres).
"""

EXAMPLES = r"""
- name: Fail over whichever primary is down, in one call, and move HAProxy's write traffic
  mttr.recovery.failover:
    provider: postgres
    nodes:
      - {name: pg1, host: 10.0.0.11, data_dir: /var/lib/postgresql/15/main}
      - {name: pg2, host: 10.0.0.12}
    load_balancers:
      - {admin_socket: /run/haproxy/admin.sock, backend: db_primary}
    login_user: mttr
    login_password: "{{ pg_password }}"
    pg_bin: /usr/lib/postgresql/15/bin
    os_user: postgres
  delegate_to: localhost
  run_once: true
  register: failover

- name: Promote the standby; fence the old primary
  mttr.recovery.failover:
    provider: postgres
    old: {name: pg1, host: 10.0.0.11, port: 5432, data_dir: /var/lib/postgresql/15/main}
    new: {name: pg2, host: 10.0.0.12, port: 5432}
    login_user: mttr
    login_password: "{{ pg_password }}"
    pg_bin: /usr/lib/postgresql/15/bin
    os_user: postgres

- name: Send writes to the new primary
  mttr.recovery.failover:
    provider: haproxy
    admin_socket: /run/haproxy/admin.sock
    backend: db_primary
    old: {name: pg1}
    new: {name: pg2}
"""

RETURN = r"""
previous_primary:
  description: (postgres) The old primary (null when nothing changed).
  returned: success
  type: str
new_primary:
  description: (postgres) The new primary.
  returned: success
  type: str
primary:
  description: (postgres, failover) The node that is the primary after this call (also when nothing changed).
  returned: success
  type: str
  sample: pg2
load_balancers:
  description: (postgres, with O(load_balancers)) What was done in each backend.
  returned: success
  type: list
  elements: dict
standbys:
  description: (postgres, with O(nodes)) What was done to each remaining standby (repointed, or why not).
  returned: when a failover ran and other standbys answered
  type: list
  elements: dict
  sample: [{"node": "pg3", "msg": "pg3 now follows pg2"}]
nodes:
  description: (postgres, with O(nodes)) Each node's probe before anything was done (role, lag, LSN, error).
  returned: success
  type: dict
  sample: {"pg1": {"reachable": false, "error": "connection refused"}, "pg2": {"reachable": true, "in_recovery": true}}
fence:
  description: (postgres) What was done to the old primary, and whether fencing is still pending.
  returned: when a failover ran
  type: dict
  contains:
    node:
      description: The old primary.
      type: str
    actions:
      description: What was done to it.
      type: list
      elements: str
    pending:
      description: True when nothing could be done to it; it must be fenced before it can start again.
      type: bool
  sample: {"node": "pg1", "actions": ["standby.signal written (it can only come back as a standby)"], "pending": false}
timings:
  description:
    - Seconds per step. postgres - C(detect_s) (probing the nodes), C(drain_s), C(fence_s), C(promote_s),
      C(detect_to_promote_s) (from the start of the call to the promoted primary), C(promote_to_first_write_s),
      C(switch_s) (load balancers), C(total_s), C(repoint_s) (other standbys, after C(total_s)).
      haproxy - C(switch_s), C(until_up_s).
  returned: when something changed
  type: dict
lag_bytes:
  description: (postgres) Bytes of the old primary's WAL the candidate never received (RV(exposure.unreceived_bytes)).
  returned: when a failover ran or was planned
  type: int
exposure:
  description: (postgres) What the promotion could lose, measured against the old primary's last WAL position.
  returned: when a failover ran or was planned
  type: dict
  contains:
    replication:
      description: C(synchronous), C(asynchronous) or C(unknown), from the old primary's settings.
      type: str
    primary_lsn:
      description: The old primary's last WAL position (null when unknown).
      type: str
    primary_lsn_source:
      description:
        - C(live) (it answered), C(wal) (the end of the WAL in its data directory), C(final) (after it was
          fenced), C(receiver) (the end the candidate's WAL receiver last heard of).
      type: str
    candidate_lsn:
      description: All the WAL the candidate held, received or replayed.
      type: str
    unreceived_bytes:
      description: The old primary's WAL the candidate never received (null when unknown).
      type: int
    acknowledged_writes_at_risk:
      description: False when no acknowledged write can be lost, true when some may be, null when unknown.
      type: bool
  sample: {"replication": "asynchronous", "primary_lsn": "0/3036D80", "primary_lsn_source": "wal",
           "candidate_lsn": "0/3036D80", "unreceived_bytes": 0, "acknowledged_writes_at_risk": false}
risk:
  description:
    - A line for the incident's timeline when data may have been lost (a forced or lossy promotion, WAL
      discarded by a rejoin); the M(mttr.recovery.timeline) callback records it as a risk.
  returned: when data may have been lost
  type: str
synchronous_relaxed:
  description: (postgres) The C(synchronous_standby_names) the new primary ran with before it was relaxed to empty.
  returned: when a failover ran
  type: str
discarded_bytes:
  description: (postgres, rejoin) WAL C(pg_rewind) discarded from the old primary (writes the new primary never had).
  returned: when the node was rewound
  type: int
proven:
  description: (postgres, rejoin) True once the node streams from O(new), is listed by it, and replayed a commit.
  returned: when the node was rejoined
  type: bool
upstream:
  description: (postgres, rejoin) The host and port the rejoined node streams from.
  returned: when the node streams
  type: str
"""

from ansible_collections.mttr.recovery.plugins.module_utils.aws import (
    AwsUnavailable,
    aws_argument_spec,
    botocore_errors,
    client,
)
from ansible_collections.mttr.recovery.plugins.module_utils.failover_common import FailoverError, check_targets
from ansible_collections.mttr.recovery.plugins.module_utils.failover_haproxy import HAProxySwitch
from ansible_collections.mttr.recovery.plugins.module_utils.failover_postgres import (
    PgNode,
    PostgresFailover,
    failover_cluster,
    fence_data_dir,
    rejoin,
)
from ansible_collections.mttr.recovery.plugins.module_utils.failover_route53 import Route53Switch
from ansible_collections.mttr.recovery.plugins.module_utils.module import MttrModule
from ansible_collections.mttr.recovery.plugins.module_utils.pg import load_psycopg, postgres_argument_spec

NODE_OPTIONS = {
    "name": {"type": "str", "required": True},
    "host": {"type": "str", "default": "127.0.0.1"},
    "port": {"type": "int", "default": 5432},
    "data_dir": {"type": "path"},
}
NODE = {"type": "dict", "options": NODE_OPTIONS}


def route53_switch(module):
    params = module.params
    return Route53Switch(
        client("route53", params),
        params["hosted_zone_id"],
        params["record_name"],
        params["record_type"],
        params["new"]["host"],
        ttl=params["ttl"],
        waiter_delay=params["waiter_delay"],
    )


def postgres(module):
    """The postgres provider's actions."""
    params = module.params
    if load_psycopg() is None:
        module.require("psycopg")

    def pg_node(spec):
        return PgNode(
            spec["name"],
            spec["host"],
            spec["port"],
            params["login_user"],
            params["login_password"],
            data_dir=spec.get("data_dir"),
        )

    options = {
        "run": module.run,
        "pg_bin": params["pg_bin"],
        "os_user": params["os_user"],
        "max_lag_bytes": params["max_lag_bytes"],
        "force": params["force"],
    }
    if params["nodes"] is not None:
        return failover_cluster(
            [pg_node(spec) for spec in params["nodes"]],
            [(lb["admin_socket"], lb["backend"]) for lb in params["load_balancers"]],
            switchover=params["switchover"],
            repoint=params["repoint_standbys"],
            check_mode=module.check_mode,
            **options,
        )
    old, new = pg_node(params["old"]), pg_node(params["new"])
    if params["action"] == "fence":
        return fence_data_dir(old, new, params["os_user"], module.check_mode)
    if params["action"] == "rejoin":
        return rejoin(
            old,
            new,
            module.run,
            pg_bin=params["pg_bin"],
            os_user=params["os_user"],
            check_mode=module.check_mode,
            start=params["start_command"],
            timeout=params["rejoin_timeout"],
        )
    return PostgresFailover(old, new, **options).failover(check_mode=module.check_mode)


def main():
    spec = {
        "provider": {"type": "str", "required": True, "choices": ["postgres", "haproxy", "route53"]},
        "action": {"type": "str", "choices": ["failover", "fence", "rejoin"], "default": "failover"},
        "nodes": {"type": "list", "elements": "dict", "options": NODE_OPTIONS},
        "switchover": {"type": "bool", "default": False},
        "repoint_standbys": {"type": "bool", "default": True},
        "load_balancers": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "admin_socket": {"type": "path", "required": True},
                "backend": {"type": "str", "required": True},
            },
        },
        "old": NODE,
        "new": NODE,
        "pg_bin": {"type": "path"},
        "os_user": {"type": "str"},
        "max_lag_bytes": {"type": "int", "default": 16 * 1024 * 1024},
        "force": {"type": "bool", "default": False},
        "start_command": {"type": "list", "elements": "str"},
        "rejoin_timeout": {"type": "int", "default": 60},
        "admin_socket": {"type": "path"},
        "backend": {"type": "str"},
        "hosted_zone_id": {"type": "str"},
        "record_name": {"type": "str"},
        "record_type": {"type": "str", "default": "A"},
        "ttl": {"type": "int", "default": 30},
        "waiter_delay": {"type": "int", "default": 2},
    }
    spec.update(postgres_argument_spec())
    spec.update(aws_argument_spec())
    module = MttrModule(
        argument_spec=spec,
        required_if=[
            ("provider", "haproxy", ("admin_socket", "backend")),
            ("provider", "route53", ("hosted_zone_id", "record_name")),
            ("action", "fence", ("old", "new")),
            ("action", "rejoin", ("old", "new")),
        ],
        mutually_exclusive=[("nodes", "old"), ("nodes", "new")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_targets(params["provider"], params["action"], params["nodes"], params["old"], params["new"])
        if params["provider"] == "route53":
            result = route53_switch(module).switch(check_mode=module.check_mode)
        elif params["provider"] == "haproxy":
            result = HAProxySwitch(
                params["admin_socket"], params["backend"], params["old"]["name"], params["new"]["name"]
            ).switch(check_mode=module.check_mode)
        else:
            result = postgres(module)
    except AwsUnavailable:
        module.require("boto3")
    except (FailoverError, *botocore_errors()) as exc:
        module.fail_from(exc, readable=(FailoverError,))
    if module._diff:
        diffs = [lb["diff"] for lb in result.get("load_balancers") or [] if "diff" in lb]
        if diffs and "diff" not in result:
            result["diff"] = {"before": [d["before"] for d in diffs], "after": [d["after"] for d in diffs]}
    module.finish(result)


if __name__ == "__main__":
    main()
