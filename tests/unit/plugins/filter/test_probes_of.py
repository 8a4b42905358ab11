"""probes_of: the probes hosts (or groups' hosts) list in their inventory, with Ansible's real hostvars."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager

from ansible_collections.mttr.recovery.plugins.filter.probes_of import probes_of

INVENTORY = """\
all:
  children:
    app:
      hosts:
        app1: {mttr_probes: [{name: app1 health, kind: http, url: "http://127.0.0.1:1/health"}]}
    db:
      hosts:
        pg1: {mttr_probes: [{name: pg1, kind: tcp, host: 127.0.0.1, port: "{{ 5000 + 1 }}"}]}
        pg2: {mttr_probes: [{name: pg2, kind: tcp, host: 127.0.0.1, port: 5002}], other: [{name: x}]}
        bare: {}
    both:
      hosts:
        pg1:
        app1:
"""


@pytest.fixture(name="inventory")
def fixture_inventory(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY)
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(path)])
    variables = VariableManager(loader=loader, inventory=inventory)
    hostvars = HostVars(inventory=inventory, variable_manager=variables, loader=loader)
    return hostvars, {name: [host.name for host in group.get_hosts()] for name, group in inventory.groups.items()}


def test_hosts_in_order_templated_and_hosts_without_probes_add_nothing(inventory):
    hostvars, _groups = inventory
    probes = probes_of(["pg2", "bare", "pg1"], hostvars)
    assert [probe["name"] for probe in probes] == ["pg2", "pg1"]
    assert int(probes[1]["port"]) == 5001


def test_groups_each_host_once(inventory):
    hostvars, groups = inventory
    probes = probes_of(["both", "db", "app"], hostvars, groups)
    assert [probe["name"] for probe in probes] == ["pg1", "app1 health", "pg2"]


def test_another_variable(inventory):
    hostvars, _groups = inventory
    assert probes_of("pg2", hostvars, var="other") == [{"name": "x"}]


def test_unknown_group_or_host_is_named(inventory):
    hostvars, groups = inventory
    with pytest.raises(AnsibleFilterError, match="no group 'web'"):
        probes_of(["web"], hostvars, groups)
    with pytest.raises(AnsibleFilterError, match="no host 'pg9'"):
        probes_of(["pg9"], hostvars)
