# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: probes_of
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: The probes the given hosts (or groups' hosts) list in their inventory
description:
  - Collects each host's C(mttr_probes) (or O(var)) into one list, in host order, each host once,
    ready for M(mttr.recovery.health_check). Hosts without the variable add nothing.
  - With O(groups), the input names groups, and their members are used.
options:
  _input:
    description: Host names, or group names when O(groups) is given.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: raw
    required: true
  groups:
    description: The C(groups) magic variable, to read the input as group names.
    type: raw
  var:
    description: The host variable holding the probes.
    type: str
    default: mttr_probes
"""

EXAMPLES = r"""
- name: Probe every host of the play
  mttr.recovery.health_check:
    probes: "{{ ansible_play_hosts | mttr.recovery.probes_of(hostvars) }}"

- name: Probe the app and lb groups
  mttr.recovery.health_check:
    probes: "{{ ['app', 'lb'] | mttr.recovery.probes_of(hostvars, groups) }}"
"""

RETURN = r"""
_value:
  description: The probes, one list.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def probes_of(names, hostvars, groups=None, var="mttr_probes"):
    if isinstance(names, str):
        names = [names]
    hosts = []
    for name in names:
        if groups is not None and name not in groups:
            raise AnsibleFilterError(f"probes_of: the inventory has no group {name!r}")
        for host in groups[name] if groups is not None else [name]:
            if host not in hosts:
                hosts.append(host)
    probes = []
    for host in hosts:
        if host not in hostvars:
            raise AnsibleFilterError(f"probes_of: the inventory has no host {host!r}")
        listed = hostvars[host].get(var) or []
        if not isinstance(listed, (list, tuple)):
            raise AnsibleFilterError(f"probes_of: {host}'s {var} is not a list")
        probes.extend(listed)
    return probes


class FilterModule:
    def filters(self):
        return {"probes_of": probes_of}
