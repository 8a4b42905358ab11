# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: duration
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: Seconds between two times, or a number of seconds, made readable
description:
  - With two ISO 8601 times, the time between them; with a number, that many seconds.
  - Readable (C(1h 02m 04s), C(4.2s)) unless O(human=false), which returns the seconds.
options:
  _input:
    description: The start time, or a number of seconds.
    type: raw
    required: true
  end:
    description: The end time.
    type: str
  human:
    description: Return readable text instead of seconds.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Time to resolve, readable
  ansible.builtin.debug:
    msg: "{{ record.opened_at | mttr.recovery.duration(record.resolved_at) }}"
"""

RETURN = r"""
_value:
  description: Readable text, or seconds when O(human=false).
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import humanize, seconds_between


def duration(start, end=None, human=True):
    try:
        seconds = float(start) if end is None else seconds_between(start, end)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"duration: {exc}") from None
    return humanize(seconds) if human else seconds


class FilterModule:
    def filters(self):
        return {"duration": duration}
