"""``mttr recover`` refuses what it cannot do before anything starts: one line, exit code 2 (1 for a lock held
by another incident), no incident opened, no run started. The recoveries themselves are in
tests/integration/test_recover.py."""

from __future__ import annotations

import re

import pytest

from conftest import LAB_INVENTORY, run_mttr


def recover(home, *args):
    return run_mttr("recover", *args, home=home)


def opened(home, service):
    result = run_mttr("incident", "open", "--service", service, "--severity", "SEV2", "--summary", "by hand", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    return re.search(r"INC-[0-9-]+", result.stdout).group(0)


def assert_refused(result, message, code=2):
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def nothing_started(home):
    return not (home / "incidents").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service", "nope"], "unknown service nope: the catalog has objstore, orders, orders-db"),
        (
            ["--service", "orders", "--failure-mode", "primary-down"],
            "service orders has no strategy for failure mode primary-down "
            "(it has: app-crash, bad-release, instance-lost)",
        ),
        (["--service", "orders", "--incident", "INC-20260101-001"], "no incident INC-20260101-001"),
        (["--service", "orders", "-e", "novalue"], "-e 'novalue': give extra vars as key=value"),
        (["--service", "orders", "-e", "x={not json"], "-e x: the value looks like JSON but is not"),
    ],
)
def test_bad_input_is_one_line_exit_code_2_and_starts_nothing(tmp_path, args, message):
    result = recover(tmp_path, *args, "-i", str(LAB_INVENTORY))
    assert_refused(result, message)
    assert nothing_started(tmp_path)


def test_an_inventory_without_a_catalog_says_so(tmp_path):
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n")
    assert_refused(recover(tmp_path, "--service", "orders", "-i", str(tmp_path / "hosts.yml")), "no service catalog")
    assert nothing_started(tmp_path)


def test_an_incident_of_another_service_is_refused(tmp_path):
    other = opened(tmp_path, "objstore")
    result = recover(tmp_path, "--service", "orders", "--incident", other)
    assert_refused(result, f"incident {other} is about objstore, not orders")
    assert nothing_started(tmp_path)


def test_a_resolved_incident_is_not_resumed(tmp_path):
    done = opened(tmp_path, "orders")
    assert run_mttr("incident", "resolve", done, home=tmp_path).returncode == 0
    assert_refused(recover(tmp_path, "--service", "orders", "--incident", done), f"incident {done} is resolved already")


def test_a_service_held_by_another_incident_fails_fast_naming_it(tmp_path):
    holder = opened(tmp_path, "orders")
    result = recover(tmp_path, "--service", "orders")
    assert_refused(result, holder, code=1)
    # opened by 'mttr incident open', whose process is gone: the way on is to resume that incident
    assert f"resume it with 'mttr recover --service orders --incident {holder}'" in result.stderr
    assert nothing_started(tmp_path)
