"""recovery_order: dependencies first, lower tier first among peers, cycles named."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.filter.recovery_order import FilterModule
from ansible_collections.mttr.recovery.plugins.module_utils.catalog import CatalogError, recovery_order

recover = FilterModule().filters()["recovery_order"]

ESTATE = {
    "checkout": {"tier": 0, "depends_on": ["payments", "orders-db"]},
    "payments": {"tier": 0, "depends_on": ["payments-db"]},
    "orders-db": {"tier": 0},
    "payments-db": {"tier": 0},
    "reporting": {"tier": 2, "depends_on": ["orders-db"]},
    "search": {"tier": 1},
    "web": {"tier": 1, "depends_on": "checkout"},
}


@pytest.mark.parametrize(
    ("affected", "order"),
    [
        (["checkout"], ["checkout"]),
        (["checkout", "orders-db"], ["orders-db", "checkout"]),
        # through a service that is not affected itself: payments-db before checkout (via payments)
        (["checkout", "payments-db"], ["payments-db", "checkout"]),
        # ties: lower tier first, then by name; dependencies still first
        (["reporting", "search", "orders-db"], ["orders-db", "search", "reporting"]),
        (["search", "web", "checkout", "payments", "payments-db", "orders-db"],
         ["orders-db", "payments-db", "payments", "checkout", "search", "web"]),
        (["web", "web"], ["web"]),
        ("search", ["search"]),
    ],
)  # fmt: skip
def test_order(affected, order):
    assert recovery_order(affected, ESTATE) == order
    assert recover(affected, ESTATE) == order


def test_the_order_does_not_depend_on_the_input_order():
    names = ["web", "reporting", "orders-db", "search", "payments-db", "checkout", "payments"]
    assert recovery_order(names, ESTATE) == recovery_order(list(reversed(names)), ESTATE)


def test_a_cycle_is_named():
    cyclic = dict(ESTATE, **{"orders-db": {"tier": 0, "depends_on": ["reporting"]}})
    with pytest.raises(CatalogError, match="dependency cycle in the catalog: orders-db -> reporting -> orders-db"):
        recovery_order(["checkout"], cyclic)
    with pytest.raises(AnsibleFilterError, match="recovery_order: dependency cycle"):
        recover(["checkout"], cyclic)


def test_a_cycle_elsewhere_in_the_catalog_does_not_stop_an_unrelated_recovery():
    cyclic = dict(ESTATE, a={"depends_on": ["b"]}, b={"depends_on": ["a"]})
    assert recovery_order(["search"], cyclic) == ["search"]


@pytest.mark.parametrize(
    ("affected", "services", "message"),
    [
        (["nope"], ESTATE, "unknown service nope: the catalog has checkout, orders-db"),
        (["a"], {"a": {"depends_on": ["ghost"]}}, "service a depends on ghost, which is not in the catalog"),
        (["a"], {"a": {"depends_on": ["a"]}}, "service a depends on itself"),
        (["a"], {"a": {"tier": 7}}, "service a: tier must be one of 0, 1, 2, 3"),
        (["a"], {}, "unknown service a: the catalog has no services"),
    ],
)
def test_bad_input_is_one_clear_error(affected, services, message):
    with pytest.raises(CatalogError, match=message):
        recovery_order(affected, services)
