# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: service_groups
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: The inventory groups of a catalogued service, of one of its components, or of its dependants
description:
  - The M(mttr.recovery.service_catalog) inventory plugin makes a group per service and per service component
    (non-alphanumerics become C(_)); this names them from the catalog, so roles never hard-code a group.
  - With O(component), only the services that have that component give a group.
options:
  _input:
    description: The catalog (C(mttr_catalog)).
    type: dict
    required: true
  service:
    description: The service.
    type: str
    required: true
  component:
    description: A component (C(lb), C(app), C(primary)...); omitted, the service groups.
    type: str
  dependents:
    description: Also the groups of the services that depend on O(service) directly.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The load balancers in front of the database and of what uses it
  ansible.builtin.debug:
    msg: "{{ mttr_catalog | mttr.recovery.service_groups('orders-db', component='lb', dependents=true) }}"
"""

RETURN = r"""
_value:
  description: Group names, the service's first.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.module_utils.catalog import CatalogError
from ansible_collections.mttr.recovery.plugins.module_utils.catalog import service_groups as groups_of


def service_groups(catalog, service, component=None, dependents=False):
    try:
        return groups_of(catalog or {}, service, component=component, with_dependents=dependents)
    except CatalogError as exc:
        raise AnsibleFilterError(f"service_groups: {exc}") from None


class FilterModule:
    def filters(self):
        return {"service_groups": service_groups}
