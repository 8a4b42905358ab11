# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: severity
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: Classify an incident's severity (SEV1-SEV4) from its impact
description:
  - Takes impact facts - C(share_down) and C(share_degraded) (0 to 1), C(tier) (1 is the most
    critical), C(users_affected), C(data_loss) - or a registered M(mttr.recovery.health_check) result,
    and returns the severity of the first matching rule.
  - "Default rules, in order: SEV1 for data loss or half the probes down on a tier-1 service, or
    10000+ users; SEV2 for anything down on tier 1, half down on tier 2, data loss elsewhere, or
    1000+ users; SEV3 for anything down or degraded; SEV4 otherwise."
  - Each rule is a dict with C(severity) and any of C(min_share_down), C(min_share_degraded),
    C(max_tier), C(min_users), C(data_loss); pass O(rules) to override them.
options:
  _input:
    description: Impact facts, or a health_check result.
    type: dict
    required: true
  tier:
    description: The service's tier, when the input does not carry it.
    type: int
  rules:
    description: Rules to use instead of the defaults.
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Classify the incident from the health check
  ansible.builtin.set_fact:
    incident_severity: "{{ __health | mttr.recovery.severity(tier=mttr_service_tier) }}"

- name: Classify from known impact
  ansible.builtin.debug:
    msg: "{{ {'share_down': 0.3, 'tier': 1} | mttr.recovery.severity }}"
"""

RETURN = r"""
_value:
  description: The severity, C(SEV1) to C(SEV4).
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import classify_severity


def severity(facts, tier=None, rules=None):
    try:
        return classify_severity(facts, rules=rules, tier=tier)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"severity: {exc}") from None


class FilterModule:
    def filters(self):
        return {"severity": severity}
