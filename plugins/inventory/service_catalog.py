# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: service_catalog
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: Services, their tiers, dependencies and recovery strategies as an inventory
description:
  - Reads a service catalog (a YAML file whose name ends in C(catalog.yml) or C(catalog.yaml), with
    C(plugin) set to C(mttr.recovery.service_catalog)) and yields a group per service, a group per service component
    (C(<service>_<component>), e.g. C(orders_db_primary)), a group per tier (C(tier0) .. C(tier3)), and host
    variables C(mttr_services), C(mttr_service) (the first), C(mttr_tier) (the most critical of its services)
    and C(mttr_components) (service -> its components on this host). Every host gets C(mttr_catalog), the
    whole catalog, for the M(mttr.recovery.recovery_order) filter and the lifecycle roles.
  - Group names are the service and component names with characters other than letters, digits and
    C(_) replaced by C(_).
  - Dependencies, owner and lifecycle can come from Backstage C(catalog-info.yaml) files (O(backstage)) -
    C(Component) entities' C(spec.dependsOn), C(spec.owner), C(spec.lifecycle), and the annotations
    C(mttr.recovery/tier), C(mttr.recovery/hosts), C(mttr.recovery/strategies) (YAML text) - so teams
    that keep a Backstage catalog do not keep two. What O(services) says of a service wins.
  - A dependency on a service the catalog lacks, a dependency cycle, or a tier outside 0-3 is an error
    that names the service.
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; it marks the file as a service catalog.
    type: str
    required: true
    choices: [mttr.recovery.service_catalog]
  services:
    description:
      - Service name to its description - C(tier) (0 most critical .. 3, default 3), C(owner), C(lifecycle),
        C(depends_on) (service names), C(hosts) (component name to host names or patterns such as
        C(pg[1:2])), C(strategies) (failure mode to a strategy name or a dict with C(strategy) and its
        parameters), C(probes), C(integrity_checks), C(slo).
    type: dict
    default: {}
  backstage:
    description: Backstage C(catalog-info.yaml) files (paths relative to the catalog file) to read Components from.
    type: list
    elements: path
    default: []
  host_vars:
    description: Host name to variables for it (connection settings, C(pg_*), C(haproxy_*) ...).
    type: dict
    default: {}
  vars:
    description: Variables for every host.
    type: dict
    default: {}
"""

EXAMPLES = r"""
# inventories/prod/service_catalog.yml
plugin: mttr.recovery.service_catalog
backstage: [../../catalog-info.yaml]
vars:
  ansible_user: mttr
services:
  orders-db:
    tier: 0
    owner: team-orders
    hosts:
      primary: [pg-orders-01]
      standby: [pg-orders-02]
    strategies:
      primary-down: failover
      data-loss: {strategy: restore, repository: s3}
  checkout:
    tier: 0
    depends_on: [orders-db]
    hosts:
      app: ["web[01:03]"]
      lb: [lb-01]
    strategies:
      bad-release: rollback
      app-crash: restart
keyed_groups:
  - key: mttr_tier | string
    prefix: criticality
"""

import os

import yaml
from ansible.errors import AnsibleParserError
from ansible.inventory.helpers import get_group_vars
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars

from ansible_collections.mttr.recovery.plugins.module_utils.catalog import CatalogError, find_cycle, group_name, tier_of

ANNOTATION = "mttr.recovery/"


def backstage_services(paths, base):
    """Services from Backstage Component entities (multi-document catalog-info.yaml files)."""
    found = {}
    for path in paths:
        full = path if os.path.isabs(path) else os.path.join(base, path)
        try:
            with open(full, encoding="utf-8") as handle:
                documents = [doc for doc in yaml.safe_load_all(handle) if isinstance(doc, dict)]
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleParserError(f"service_catalog: cannot read Backstage catalog {full}: {exc}") from None
        for entity in documents:
            if entity.get("kind") != "Component":
                continue
            metadata, spec = entity.get("metadata") or {}, entity.get("spec") or {}
            name = metadata.get("name")
            if not name:
                raise AnsibleParserError(f"service_catalog: a Component in {full} has no metadata.name")
            service = {
                "owner": spec.get("owner"),
                "lifecycle": spec.get("lifecycle"),
                # "component:default/payments" or "resource:orders-db" -> "payments", "orders-db"
                "depends_on": [ref.split(":", 1)[-1].split("/")[-1] for ref in spec.get("dependsOn") or []],
            }
            for key, value in (metadata.get("annotations") or {}).items():
                if key.startswith(ANNOTATION):
                    field = key[len(ANNOTATION) :]
                    try:
                        service[field] = yaml.safe_load(value) if isinstance(value, str) else value
                    except yaml.YAMLError as exc:
                        raise AnsibleParserError(
                            f"service_catalog: annotation {key} of Component {name} in {full} is not YAML: {exc}"
                        ) from None
            found[name] = {key: value for key, value in service.items() if value not in (None, [])}
    return found


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "mttr.recovery.service_catalog"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("catalog.yml", "catalog.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        services = None
        if use_cache:
            try:
                services = self._cache[cache_key]
            except KeyError:
                services = None
        if services is None:
            services = self.catalog(os.path.dirname(path))
            if self.get_option("cache"):
                self._cache[cache_key] = services
        self.populate(services)

    def catalog(self, base):
        services = backstage_services(self.get_option("backstage"), base)
        for name, own in (self.get_option("services") or {}).items():
            services[name] = dict(services.get(name, {}), **(own or {}))
        try:
            for name in services:
                tier_of(services, name)
            cycle = find_cycle(services, list(services))
        except CatalogError as exc:
            raise AnsibleParserError(f"service_catalog: {exc}") from None
        if cycle:
            raise AnsibleParserError(f"service_catalog: dependency cycle: {' -> '.join(cycle)}")
        return services

    def populate(self, services):
        inventory = self.inventory
        host_vars = self.get_option("host_vars") or {}
        memberships = {}  # host -> [(service, component)]
        for name, service in sorted(services.items()):
            tier = tier_of(services, name)
            service_group = inventory.add_group(group_name(name))
            tier_group = inventory.add_group(f"tier{tier}")
            inventory.add_child(tier_group, service_group)
            for component, patterns in (service.get("hosts") or {}).items():
                component_group = inventory.add_group(group_name(name, component))
                inventory.add_child(service_group, component_group)
                for pattern in [patterns] if isinstance(patterns, str) else patterns or []:
                    hosts, _port = self._expand_hostpattern(pattern)
                    for host in hosts:
                        inventory.add_host(host, group=component_group)
                        memberships.setdefault(host, []).append((name, component))
        for key, value in (self.get_option("vars") or {}).items():
            inventory.set_variable("all", key, value)
        inventory.set_variable("all", "mttr_catalog", services)
        for host, member_of in memberships.items():
            names = list(dict.fromkeys(service for service, _component in member_of))
            components = {}
            for service, component in member_of:
                components.setdefault(service, []).append(component)
            facts = {
                "mttr_services": names,
                "mttr_service": names[0],
                "mttr_tier": min(tier_of(services, service) for service in names),
                "mttr_components": components,
            }
            facts.update(host_vars.get(host) or {})
            for key, value in facts.items():
                inventory.set_variable(host, key, value)
            strict = self.get_option("strict")
            self._set_composite_vars(self.get_option("compose"), self.variables(host), host, strict=strict)
            variables = self.variables(host)  # with what compose set
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)

    def variables(self, host):
        """The host's variables over the groups' (so compose and keyed_groups see mttr_catalog and vars)."""
        entry = self.inventory.get_host(host)
        groups = {self.inventory.groups["all"], *entry.get_groups()}  # "all" is joined only when the inventory is done
        return combine_vars(get_group_vars(list(groups)), entry.get_vars())
