# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: recovery_order
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: The order in which to recover affected services
description:
  - Every dependency before its dependants (also through services that are not affected themselves);
    among the services free to go, the lower tier first (0 is the most critical), then by name, so the
    order is the same every time.
  - A dependency cycle, an unknown service or a dependency missing from the catalog is an error that
    names it.
options:
  _input:
    description: The affected services' names.
    type: list
    elements: str
    required: true
  services:
    description:
      - The catalog - service name to its description (C(tier), C(depends_on), ...), as the
        M(mttr.recovery.service_catalog) inventory plugin sets it in C(mttr_catalog).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Recover the affected services, dependencies first
  ansible.builtin.include_role:
    name: "mttr.recovery.{{ mttr_catalog[item].strategies[mttr_failure_mode] }}"
  loop: "{{ mttr_affected | mttr.recovery.recovery_order(mttr_catalog) }}"
"""

RETURN = r"""
_value:
  description: The affected services, in recovery order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.module_utils.catalog import CatalogError
from ansible_collections.mttr.recovery.plugins.module_utils.catalog import recovery_order as order


def recovery_order(affected, services):
    try:
        return order(affected, services)
    except CatalogError as exc:
        raise AnsibleFilterError(f"recovery_order: {exc}") from None


class FilterModule:
    def filters(self):
        return {"recovery_order": recovery_order}
