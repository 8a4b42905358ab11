# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: health_lines
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: Render a health_check result as aligned text lines
description:
  - Turns the registered result of M(mttr.recovery.health_check) into a header, one line per
    probe (status, name, latency, error or details) and an overall line, for C(debug) output.
options:
  _input:
    description: A registered M(mttr.recovery.health_check) result.
    type: dict
    required: true
  width:
    description: Width of the probe name column.
    type: int
    default: 40
"""

EXAMPLES = r"""
- name: Show the health of every probe
  ansible.builtin.debug:
    msg: "{{ __health | mttr.recovery.health_lines }}"
"""

RETURN = r"""
_value:
  description: The lines.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.module_utils.probes import format_lines


def health_lines(result, width=40):
    if not isinstance(result, dict) or "probes" not in result:
        raise AnsibleFilterError("health_lines expects a registered mttr.recovery.health_check result")
    return format_lines(result, width)


class FilterModule:
    def filters(self):
        return {"health_lines": health_lines}
