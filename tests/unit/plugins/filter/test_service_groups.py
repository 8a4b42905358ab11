"""service_groups: the inventory groups of a service, of one of its components, and of its dependants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.filter.service_groups import FilterModule
from ansible_collections.mttr.recovery.plugins.module_utils.catalog import (
    CatalogError,
    dependents,
    group_name,
    service_groups,
)

groups_of = FilterModule().filters()["service_groups"]

# The lab's catalog (inventories/lab/service_catalog.yml), and a reporting service that also uses the database.
CATALOG = {
    "orders-db": {
        "tier": 0,
        "hosts": {"primary": ["pg1"], "standby": ["pg2"]},
        "strategies": {"primary-down": "failover", "data-loss": "restore"},
    },
    "objstore": {"tier": 1, "hosts": {"s3": ["s3"]}},
    "orders": {
        "tier": 1,
        "depends_on": ["orders-db", "objstore"],
        "hosts": {"app": ["app1"], "lb": ["lb1"]},
        "strategies": {"bad-release": "rollback", "app-crash": "restart"},
    },
    "reporting": {"tier": 2, "depends_on": "orders-db", "hosts": {"app": ["rep1"]}},
}


@pytest.mark.parametrize(
    ("service", "options", "groups"),
    [
        ("orders-db", {}, ["orders_db"]),
        ("orders-db", {"component": "primary"}, ["orders_db_primary"]),
        ("orders", {"component": "lb"}, ["orders_lb"]),
        # a service without the component gives no group
        ("orders-db", {"component": "lb"}, []),
        ("objstore", {"component": "app"}, []),
        # with its dependants: the service's first, then theirs by name
        ("orders-db", {"dependents": True}, ["orders_db", "orders", "reporting"]),
        ("orders-db", {"component": "lb", "dependents": True}, ["orders_lb"]),
        ("orders-db", {"component": "app", "dependents": True}, ["orders_app", "reporting_app"]),
        ("objstore", {"dependents": True}, ["objstore", "orders"]),
        ("orders", {"dependents": True}, ["orders"]),
    ],
)
def test_groups(service, options, groups):
    assert groups_of(CATALOG, service, **options) == groups
    engine = dict(options)
    with_dependents = engine.pop("dependents", False)
    assert service_groups(CATALOG, service, with_dependents=with_dependents, **engine) == groups


def test_dependents_are_the_direct_ones_by_name():
    assert dependents(CATALOG, "orders-db") == ["orders", "reporting"]
    assert dependents(CATALOG, "objstore") == ["orders"]
    assert dependents(CATALOG, "orders") == []
    # through orders only: not a dependant of orders-db's dependants
    chain = dict(CATALOG, web={"depends_on": ["orders"]})
    assert dependents(chain, "orders-db") == ["orders", "reporting"]


def test_group_name():
    assert group_name("orders-db") == "orders_db"
    assert group_name("orders-db", "primary") == "orders_db_primary"
    assert group_name("pay.v2 api", "app-1") == "pay_v2_api_app_1"


def test_an_unknown_service_is_an_error():
    with pytest.raises(AnsibleFilterError, match="service_groups: unknown service billing: the catalog has objstore"):
        groups_of(CATALOG, "billing")
    with pytest.raises(CatalogError, match="unknown service billing"):
        service_groups(CATALOG, "billing", component="lb")
    with pytest.raises(AnsibleFilterError, match="unknown service orders: the catalog has no services"):
        groups_of(None, "orders")


def test_the_inventory_plugin_makes_the_groups_the_filter_names(tmp_path):
    source = tmp_path / "service_catalog.yml"
    source.write_text(yaml.safe_dump({"plugin": "mttr.recovery.service_catalog", "services": CATALOG}))
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list"],
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"},
        check=True,
    )
    groups = set(json.loads(listed.stdout))
    for service in CATALOG:
        named = groups_of(CATALOG, service, dependents=True)
        for component in ("primary", "standby", "s3", "app", "lb"):
            named += groups_of(CATALOG, service, component=component, dependents=True)
        assert set(named) <= groups, f"{service}: {sorted(set(named) - groups)} are not inventory groups"
