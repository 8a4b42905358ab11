#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: replace
short_description: Bring up a replacement for a dead instance and move its traffic to it
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - C(haproxy) - finds the dead servers of an HAProxy backend (their own health URL, asked directly, does
    not answer 200; or the servers named in O(dead)), and for each starts a new instance with
    O(start_command) on a free port of O(ports), waits until it answers its health URL, adds it to the
    backend through the runtime API (C(add server), C(enable health), C(enable server)), waits until
    HAProxy reports it C(UP), then drains, disables and deletes the dead server (C(del server)).
    Needs HAProxy 2.4 or later (dynamic servers) and a backend whose balancing algorithm allows them
    (not C(static-rr) nor a consistent hash).
  - An instance that never becomes healthy is stopped (through its O(pidfile)), and a server HAProxy
    never reports C(UP) is deleted again, so a failed attempt leaves the backend as it found it.
  - C(ec2) - launches one instance from the dead instance's launch template (or O(launch_template)),
    tagged C(mttr-recovery:replaces=<dead instance id>), waits for the C(instance_running) and
    C(instance_status_ok) waiters, registers it in O(target_groups) and waits for C(target_in_service),
    then deregisters and terminates the dead instance. The tag lets a second run find the replacement.
  - C(autoscaling) - has the instance's Auto Scaling group replace it (see O(autoscaling_action)), waits
    until the group has its desired capacity of C(InService), C(Healthy) instances without it and its
    target groups report each of them C(healthy), then deregisters the dead instance from any target
    group that still lists it.
  - With nothing dead (or the dead instance already replaced) nothing changes. In check mode the plan
    is returned (names, ports, what would be launched or marked) and nothing is changed.
options:
  provider:
    description: What runs the instances.
    type: str
    required: true
    choices: [haproxy, ec2, autoscaling]
  admin_socket:
    description: (haproxy) Path of HAProxy's runtime API socket (C(stats socket ... level admin)).
    type: path
  backend:
    description: (haproxy) The backend whose servers are replaced.
    type: str
  start_command:
    description:
      - (haproxy) The command that starts one instance, as a list of arguments (no shell). It must return
        once the instance is started (a daemon that detaches).
      - C({port}) and C({name}) in any argument are replaced by the chosen port and the new server's name.
    type: list
    elements: str
  ports:
    description:
      - (haproxy) Ports a replacement may listen on. The first one that no server of the backend uses and
        nothing listens on is taken.
    type: list
    elements: int
  address:
    description: (haproxy) Address the replacement listens on and HAProxy sends traffic to.
    type: str
    default: 127.0.0.1
  pidfile:
    description:
      - (haproxy) Where O(start_command) writes the instance's pid (C({port}) and C({name}) replaced). Read to
        report the pid and to stop an instance that never becomes healthy.
    type: str
  health_path:
    description: (haproxy) Path of the health URL asked on each server and on the replacement.
    type: str
    default: /health
  dead:
    description:
      - (haproxy) Names of the servers to replace. By default every server not in maintenance whose health URL
        does not answer 200 is replaced.
    type: list
    elements: str
  server_options:
    description:
      - (haproxy) Options of the added server (C(add server) keywords). Dynamic servers do not inherit the
        backend's C(default-server) line, so the check settings are given here.
    type: str
    default: check inter 1s fall 2 rise 1
  instance_id:
    description: (ec2, autoscaling) The dead instance.
    type: str
  target_groups:
    description:
      - (ec2) The target groups (names or ARNs) the replacement is registered in and the dead instance
        deregistered from. Required for C(ec2).
      - (autoscaling) The target groups that must report the group's instances healthy; by default the group's own.
    type: list
    elements: str
  launch_template:
    description:
      - (ec2) Launch template (id C(lt-...) or name) of the replacement. By default the one the dead instance was
        launched from (its C(aws:ec2launchtemplate:id) tag).
    type: str
  launch_template_version:
    description: (ec2) Version of the launch template.
    type: str
    default: $Default
  auto_scaling_group:
    description: (autoscaling) The group; by default the one the instance belongs to.
    type: str
  autoscaling_action:
    description:
      - (autoscaling) C(unhealthy) marks the instance C(Unhealthy) (C(set_instance_health)); the group's own
        C(ReplaceUnhealthy) process then terminates and replaces it. C(terminate) terminates it through the group
        (C(terminate_instance_in_auto_scaling_group) without decrementing the desired capacity), which replaces
        it at once.
      - Either way, the module refuses when the group has a process it needs suspended.
    type: str
    choices: [unhealthy, terminate]
    default: unhealthy
  timeout:
    description:
      - Seconds to wait for each step (the instance healthy, HAProxy reporting it UP; the instance running,
        the target groups reporting it healthy, the group replacing the instance).
      - Defaults to 30 for C(haproxy), 600 for C(ec2) and C(autoscaling).
    type: float
  waiter_delay:
    description: (ec2, autoscaling) Seconds between two polls of AWS.
    type: float
    default: 5
extends_documentation_fragment:
  - mttr.recovery.aws
attributes:
  check_mode:
    support: full
    description:
      - Finds what is dead and reports the plan (server names and ports, what would be launched or marked);
        changes nothing.
  diff_mode:
    support: full
    description:
      - Before and after list the backend's servers (haproxy), or the target groups' targets and the group's
        instances (AWS).
notes:
  - Servers added through HAProxy's runtime API are not written to its configuration file. A reload or restart of
    HAProxy forgets the replacement and brings back the dead server; write the replacement into the
    configuration (or run this module again after the reload) to keep it.
  - The dead instance's process (C(haproxy)) is not stopped; a crashed one has nothing left to stop.
  - The AWS options are used by C(ec2) and C(autoscaling) only.
seealso:
  - module: mttr.recovery.failover
  - module: mttr.recovery.health_check
"""

EXAMPLES = r"""
- name: Replace the dead app servers of the lab's HAProxy backend
  mttr.recovery.replace:
    provider: haproxy
    admin_socket: /var/lib/mttr/run/haproxy.sock
    backend: app
    start_command: [/usr/bin/python3, /srv/app/current/app.py, --port, "{port}", --daemon,
                    --pidfile, "/run/app-{name}.pid"]
    pidfile: /run/app-{name}.pid
    ports: "{{ range(8081, 8090) | list }}"

- name: Replace a dead EC2 instance behind its target group
  mttr.recovery.replace:
    provider: ec2
    instance_id: i-0123456789abcdef0
    target_groups: [web]
    region: eu-west-1

- name: Let the Auto Scaling group replace a dead instance at once
  mttr.recovery.replace:
    provider: autoscaling
    instance_id: i-0123456789abcdef0
    autoscaling_action: terminate
"""

RETURN = r"""
msg:
  description: What was done, or would be done in check mode.
  returned: always
  type: str
  sample: replaced app/app1 by app2 on port 24331 (pid 4242)
backend:
  description: (haproxy) The backend.
  returned: provider is haproxy
  type: str
dead:
  description: (haproxy) The servers found dead (or named in O(dead)) and replaced.
  returned: provider is haproxy
  type: list
  elements: str
started:
  description: (haproxy) The instances started, each with C(name), C(address), C(port), C(pid) and C(command).
  returned: provider is haproxy
  type: list
  elements: dict
  sample: [{name: app2, address: 127.0.0.1, port: 24331, pid: 4242, command: [python3, app.py, --port, "24331"]}]
added:
  description: (haproxy) The servers added to the backend.
  returned: provider is haproxy
  type: list
  elements: str
removed:
  description: (haproxy) The servers deleted from the backend.
  returned: provider is haproxy
  type: list
  elements: str
plan:
  description:
    - (haproxy, check mode) The replacements it would start, each with C(replaces), C(name), C(address), C(port).
    - (ec2) What it does - C(launch), C(register), C(deregister), C(terminate).
  returned: in check mode (haproxy); always (ec2)
  type: raw
instance:
  description: (ec2, autoscaling) The dead instance.
  returned: provider is ec2 or autoscaling
  type: str
replacement:
  description: (ec2) The replacement instance (launched now or by an earlier run).
  returned: provider is ec2
  type: str
replacements:
  description: (autoscaling) The instances the group launched in the dead one's place.
  returned: provider is autoscaling
  type: list
  elements: str
auto_scaling_group:
  description: (autoscaling) The group.
  returned: provider is autoscaling
  type: str
target_groups:
  description: (ec2, autoscaling) The target groups' ARNs.
  returned: provider is ec2 or autoscaling
  type: list
  elements: str
deregistered:
  description: (ec2, autoscaling) The target groups the dead instance was deregistered from.
  returned: when the replacement went that far
  type: list
  elements: str
timings:
  description: Seconds the replacement took (C(replace_s)).
  returned: when something was replaced
  type: dict
diff:
  description:
    - The backend's servers (haproxy, C(name) to C(address:port status)), or the target groups' targets and the
      group's instances (AWS), before and after.
  returned: in diff mode
  type: dict
"""

from ansible_collections.mttr.recovery.plugins.module_utils.aws import (
    AwsUnavailable,
    aws_argument_spec,
    botocore_errors,
    client,
)
from ansible_collections.mttr.recovery.plugins.module_utils.module import MttrModule
from ansible_collections.mttr.recovery.plugins.module_utils.replace_aws import AutoScalingReplace, Ec2Replace
from ansible_collections.mttr.recovery.plugins.module_utils.replace_common import ReplaceError
from ansible_collections.mttr.recovery.plugins.module_utils.replace_haproxy import SERVER_OPTIONS, HAProxyReplace

TIMEOUTS = {"haproxy": 30, "ec2": 600, "autoscaling": 600}


def argument_spec():
    spec = {
        "provider": {"type": "str", "required": True, "choices": ["haproxy", "ec2", "autoscaling"]},
        "admin_socket": {"type": "path"},
        "backend": {"type": "str"},
        "start_command": {"type": "list", "elements": "str"},
        "ports": {"type": "list", "elements": "int"},
        "address": {"type": "str", "default": "127.0.0.1"},
        "pidfile": {"type": "str"},
        "health_path": {"type": "str", "default": "/health"},
        "dead": {"type": "list", "elements": "str"},
        "server_options": {"type": "str", "default": SERVER_OPTIONS},
        "instance_id": {"type": "str"},
        "target_groups": {"type": "list", "elements": "str"},
        "launch_template": {"type": "str"},
        "launch_template_version": {"type": "str", "default": "$Default"},
        "auto_scaling_group": {"type": "str"},
        "autoscaling_action": {"type": "str", "choices": ["unhealthy", "terminate"], "default": "unhealthy"},
        "timeout": {"type": "float"},
        "waiter_delay": {"type": "float", "default": 5},
    }
    spec.update(aws_argument_spec())
    return spec


def engine(module):
    params = module.params
    timeout = params["timeout"] if params["timeout"] is not None else TIMEOUTS[params["provider"]]
    if params["provider"] == "haproxy":
        return HAProxyReplace(
            params["admin_socket"],
            params["backend"],
            params["start_command"],
            params["ports"],
            module.run,
            address=params["address"],
            pidfile=params["pidfile"],
            health_path=params["health_path"],
            dead=params["dead"],
            server_options=params["server_options"],
            timeout=timeout,
        )
    aws = {"target_groups": params["target_groups"], "timeout": timeout, "delay": params["waiter_delay"]}

    def clients(service):
        return client(service, params)

    if params["provider"] == "ec2":
        return Ec2Replace(
            clients,
            params["instance_id"],
            launch_template=params["launch_template"],
            launch_template_version=params["launch_template_version"],
            **aws,
        )
    return AutoScalingReplace(
        clients,
        params["instance_id"],
        group=params["auto_scaling_group"],
        action=params["autoscaling_action"],
        **aws,
    )


def main():
    module = MttrModule(
        argument_spec=argument_spec(),
        required_if=[
            ("provider", "haproxy", ("admin_socket", "backend", "start_command", "ports")),
            ("provider", "ec2", ("instance_id", "target_groups")),
            ("provider", "autoscaling", ("instance_id",)),
        ],
        supports_check_mode=True,
    )
    try:
        result = engine(module).replace(check_mode=module.check_mode)
    except AwsUnavailable:
        module.require("boto3")
    except (ReplaceError, *botocore_errors()) as exc:
        module.fail_from(exc, readable=(ReplaceError,))
    module.finish(result)


if __name__ == "__main__":
    main()
