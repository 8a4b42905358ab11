"""``mttr plan``: the ordered plan from the inventory's catalog; bad input is one line and exit code 2."""

from __future__ import annotations

import json

import pytest

from conftest import LAB_INVENTORY, run_mttr


def plan(*args):
    return run_mttr("plan", *args)


def test_the_lab_plan_puts_dependencies_first():
    result = plan("--service", "orders", "-i", str(LAB_INVENTORY), "--json")
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)["steps"]
    assert [step["service"] for step in steps] == ["orders-db", "objstore", "orders"]
    assert steps[0]["hosts"] == {"primary": ["pg1"], "standby": ["pg2"]}
    assert steps[-1]["role"] == "affected" and steps[-1]["strategies"]["bad-release"] == "rollback"


def test_a_failure_mode_names_its_strategy():
    result = plan("--service", "orders-db", "--failure-mode", "primary-down", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == [
        {
            "service": "orders-db",
            "tier": 0,
            "owner": "team-orders",
            "role": "affected",
            "hosts": {"primary": ["pg1"], "standby": ["pg2"]},
            "strategies": {"data-loss": "restore", "primary-down": "failover"},
            "strategy": "failover",
        }
    ]
    table = plan("--service", "orders-db", "--failure-mode", "primary-down")
    assert table.returncode == 0 and "failover" in table.stdout and "pg1" in table.stdout


def write_catalog(tmp_path, services):
    (tmp_path / "service_catalog.yml").write_text(f"plugin: mttr.recovery.service_catalog\nservices:\n{services}")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("args", "services", "message"),
    [
        (["--service", "nope"], None, "unknown service nope: the catalog has objstore, orders, orders-db"),
        (
            ["--service", "orders", "--failure-mode", "primary-down"],
            None,
            "service orders has no strategy for failure mode primary-down "
            "(it has: app-crash, bad-release, instance-lost)",
        ),
        (["--service", "a"], "  a: {depends_on: [b]}\n  b: {depends_on: [a]}\n", "dependency cycle: a -> b -> a"),
        (["--service", "a"], "  a: {depends_on: [ghost]}\n", "service a depends on ghost, which is not in the catalog"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, services, message):
    inventory = write_catalog(tmp_path, services) if services else str(LAB_INVENTORY)
    result = plan(*args, "-i", inventory)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_an_inventory_without_a_catalog_says_so(tmp_path):
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n")
    result = plan("--service", "orders", "-i", str(tmp_path / "hosts.yml"))
    assert result.returncode == 2
    assert "the inventory has no service catalog" in result.stderr


def test_the_example_estate_recovers_dependencies_first():
    example = str(LAB_INVENTORY.parent / "example")
    result = plan("--service", "reporting", "-i", example, "--json")
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)["steps"]
    assert [(step["service"], step["tier"]) for step in steps] == [("payments", 0), ("checkout", 1), ("reporting", 2)]
    assert steps[1]["hosts"]["app"] == ["web-01.prod.example.com", "web-02.prod.example.com", "web-03.prod.example.com"]
    restore = plan("--service", "checkout", "--failure-mode", "data-loss", "-i", example, "--json")
    assert json.loads(restore.stdout)["steps"][-1]["strategy"] == "restore"
