"""severity, error_budget and duration filters, and the engine beneath them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mttr.recovery.plugins.filter.duration import duration
from ansible_collections.mttr.recovery.plugins.filter.error_budget import error_budget
from ansible_collections.mttr.recovery.plugins.filter.severity import severity


@pytest.mark.parametrize(
    ("facts", "tier", "expected"),
    [
        ({"share_down": 0.6, "tier": 1}, None, "SEV1"),
        ({"data_loss": True, "tier": 1}, None, "SEV1"),
        ({"users_affected": 20000, "tier": 3}, None, "SEV1"),
        ({"share_down": 0.1, "tier": 1}, None, "SEV2"),
        ({"share_down": 0.6, "tier": 2}, None, "SEV2"),
        ({"data_loss": True, "tier": 3}, None, "SEV2"),
        ({"users_affected": 1500}, None, "SEV2"),
        ({"share_down": 0.1, "tier": 2}, None, "SEV3"),
        ({"share_degraded": 0.2, "tier": 1}, None, "SEV3"),
        ({}, None, "SEV4"),
        ({"share_down": 0.6}, 1, "SEV1"),
    ],
)
def test_default_rules(facts, tier, expected):
    assert severity(facts, tier=tier) == expected


def test_health_check_result_as_input():
    result = {"probes": [{}] * 4, "total": 4, "counts": {"healthy": 2, "degraded": 0, "down": 2}}
    assert severity(result, tier=1) == "SEV1"
    assert severity(result, tier=3) == "SEV3"


def test_rules_override():
    rules = [{"severity": "SEV2", "min_share_down": 0.5}, {"severity": "SEV4"}]
    assert severity({"share_down": 0.6, "tier": 1}, rules=rules) == "SEV2"
    with pytest.raises(AnsibleFilterError, match=r"SEV1\.\.SEV4"):
        severity({}, rules=[{"severity": "P1"}])


def test_error_budget():
    budget = error_budget(1560, 0.999)
    assert budget["budget_s"] == pytest.approx(2592.0)
    assert budget["remaining_s"] == pytest.approx(1032.0)
    assert budget["consumed_ratio"] == pytest.approx(1560 / 2592, rel=1e-4)
    assert budget["exhausted"] is False
    assert error_budget(3000, 0.999)["exhausted"] is True
    assert error_budget(60, 0.99, window_days=7)["budget_s"] == pytest.approx(6048.0)
    with pytest.raises(AnsibleFilterError, match="between 0 and 1"):
        error_budget(10, 99.9)


def test_duration():
    assert duration("2026-11-23T12:00:00Z", "2026-11-23T13:02:04Z") == "1h 02m 04s"
    assert duration("2026-11-23T12:00:00+00:00", "2026-11-23T12:00:04.2+00:00") == "4.2s"
    assert duration(125) == "2m 05s"
    assert duration("2026-11-23T12:00:00Z", "2026-11-23T12:00:30Z", human=False) == 30.0
    with pytest.raises(AnsibleFilterError, match="duration"):
        duration("yesterday", "today")
