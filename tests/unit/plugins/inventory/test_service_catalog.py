"""The service_catalog inventory plugin through the real ansible-inventory: groups, host vars, Backstage, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ANSIBLE_INVENTORY = str(Path(sys.executable).parent / "ansible-inventory")

CATALOG = """\
plugin: mttr.recovery.service_catalog
backstage: [catalog-info.yaml]
vars: {ansible_connection: local}
host_vars:
  pg1: {pg_port: 5432}
services:
  orders-db:
    tier: 0
    owner: team-orders
    hosts: {primary: [pg1], standby: [pg2]}
    strategies: {primary-down: failover, data-loss: {strategy: restore, repository: s3}}
  checkout:
    depends_on: [orders-db, payments]
    hosts: {app: ["web[01:02]"], lb: lb1}
    strategies: {bad-release: rollback}
  reporting:
    tier: 2
    depends_on: [orders-db]
    hosts: {app: [pg2]}
keyed_groups:
  - key: mttr_owner | default('none')
    prefix: owner
compose:
  mttr_owner: mttr_catalog[mttr_service].owner | default(omit)
"""

BACKSTAGE = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
  annotations:
    mttr.recovery/tier: "1"
spec:
  owner: team-checkout
  lifecycle: production
  dependsOn: ["component:default/payments"]
---
kind: Component
metadata:
  name: payments
  annotations:
    mttr.recovery/hosts: "{app: [pay1]}"
    mttr.recovery/strategies: "{app-crash: restart}"
spec: {owner: team-pay, lifecycle: experimental}
---
kind: System
metadata: {name: shop}
"""


def inventory(tmp_path, catalog=CATALOG, backstage=BACKSTAGE, name="service_catalog.yml"):
    (tmp_path / name).write_text(catalog)
    (tmp_path / "catalog-info.yaml").write_text(backstage)
    result = subprocess.run(
        [ANSIBLE_INVENTORY, "-i", str(tmp_path / name), "--list"],
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"},
        check=False,
    )
    return result


def plain(value):
    """Text read from Backstage is marked unsafe (never templated); ansible-inventory shows it wrapped."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def test_groups_host_vars_and_backstage(tmp_path):
    result = inventory(tmp_path)
    assert result.returncode == 0, result.stderr
    listed = plain(json.loads(result.stdout))
    assert listed["tier0"]["children"] == ["orders_db"]
    assert sorted(listed["tier1"]["children"]) == ["checkout"]
    assert listed["orders_db"]["children"] == ["orders_db_primary", "orders_db_standby"]
    assert listed["orders_db_primary"]["hosts"] == ["pg1"]
    assert listed["checkout_app"]["hosts"] == ["web01", "web02"]
    assert listed["payments_app"]["hosts"] == ["pay1"]  # from the Backstage annotation
    assert sorted(listed["owner_team_checkout"]["hosts"]) == ["lb1", "web01", "web02"]

    hostvars = listed["_meta"]["hostvars"]
    assert hostvars["pg1"]["pg_port"] == 5432 and hostvars["pg1"]["ansible_connection"] == "local"
    # pg2 serves two services: the most critical tier counts, both are listed
    assert hostvars["pg2"]["mttr_services"] == ["orders-db", "reporting"] and hostvars["pg2"]["mttr_tier"] == 0
    assert hostvars["pg2"]["mttr_components"] == {"orders-db": ["standby"], "reporting": ["app"]}
    catalog = hostvars["web01"]["mttr_catalog"]
    # the catalog's own description wins over Backstage's, field by field
    assert catalog["checkout"]["depends_on"] == ["orders-db", "payments"] and catalog["checkout"]["tier"] == 1
    assert catalog["checkout"]["owner"] == "team-checkout" and catalog["payments"]["lifecycle"] == "experimental"
    assert catalog["payments"]["strategies"] == {"app-crash": "restart"}
    assert "shop" not in catalog


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ("a: {depends_on: [b]}\n  b: {depends_on: [a]}", "dependency cycle: a -> b -> a"),
        ("a: {depends_on: [ghost]}", "service a depends on ghost, which is not in the catalog"),
        ("a: {tier: 9}", "service a: tier must be one of 0, 1, 2, 3"),
    ],
)
def test_a_bad_catalog_is_one_clear_error(tmp_path, services, message):
    catalog = f"plugin: mttr.recovery.service_catalog\nservices:\n  {services}\n"
    result = inventory(tmp_path, catalog=catalog, backstage="")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_only_files_named_like_a_catalog_are_read(tmp_path):
    result = inventory(tmp_path, name="hosts.yml")
    assert result.returncode != 0
    assert "service_catalog" not in json.dumps(result.stdout)


def test_example_of_the_docs_parses(tmp_path):
    from ansible_collections.mttr.recovery.plugins.inventory import service_catalog

    example = textwrap.dedent(service_catalog.EXAMPLES).split("\n", 2)[2]
    (tmp_path / "catalog-info.yaml").write_text(BACKSTAGE)
    example = example.replace("../../catalog-info.yaml", "catalog-info.yaml")
    result = inventory(tmp_path, catalog=example, backstage=BACKSTAGE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["checkout_app"]["hosts"] == ["web01", "web02", "web03"]


def test_the_catalog_is_cached_until_the_cache_is_flushed(tmp_path):
    cached = f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {tmp_path / 'cache'}\n"
    catalog = "plugin: mttr.recovery.service_catalog\nservices:\n  a: {hosts: {app: [h1]}}\n" + cached
    assert "a_app" in json.loads(inventory(tmp_path, catalog=catalog, backstage="").stdout)
    changed = catalog.replace("a: {hosts: {app: [h1]}}", "b: {hosts: {app: [h2]}}")
    assert "a_app" in json.loads(inventory(tmp_path, catalog=changed, backstage="").stdout), "not read from the cache"
    (tmp_path / "service_catalog.yml").write_text(changed)
    flushed = subprocess.run(
        [ANSIBLE_INVENTORY, "-i", str(tmp_path / "service_catalog.yml"), "--list", "--flush-cache"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "b_app" in json.loads(flushed.stdout) and "a_app" not in json.loads(flushed.stdout)
