# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: error_budget
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: Error budget consumed by downtime against an availability SLO
description:
  - Returns the budget of an availability O(slo) over O(window_days), the seconds of downtime
    consumed, the seconds remaining, the consumed ratio and whether the budget is exhausted.
options:
  _input:
    description: Downtime in seconds.
    type: float
    required: true
  slo:
    description: The availability objective, between 0 and 1 (e.g. 0.999).
    type: float
    required: true
  window_days:
    description: The SLO window in days.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Error budget spent by 26 minutes of downtime against 99.9 % over 30 days
  ansible.builtin.debug:
    msg: "{{ 1560 | mttr.recovery.error_budget(0.999) }}"
"""

RETURN = r"""
_value:
  description: budget_s, consumed_s, remaining_s, consumed_ratio, exhausted, slo, window_days.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import error_budget as compute


def error_budget(downtime_s, slo, window_days=30):
    try:
        return compute(downtime_s, slo, window_days)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"error_budget: {exc}") from None


class FilterModule:
    def filters(self):
        return {"error_budget": error_budget}
