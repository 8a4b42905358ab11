# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Severity from impact, error budget from downtime, and durations: plain functions for the filters."""

from __future__ import annotations

import datetime

SEVERITY_ORDER = ("SEV1", "SEV2", "SEV3", "SEV4")

# Evaluated in order; the first rule whose every condition holds gives the severity.
DEFAULT_RULES = (
    {"severity": "SEV1", "data_loss": True, "max_tier": 1},
    {"severity": "SEV1", "min_share_down": 0.5, "max_tier": 1},
    {"severity": "SEV1", "min_users": 10000},
    {"severity": "SEV2", "min_share_down": 0.01, "max_tier": 1},
    {"severity": "SEV2", "min_share_down": 0.5, "max_tier": 2},
    {"severity": "SEV2", "data_loss": True},
    {"severity": "SEV2", "min_users": 1000},
    {"severity": "SEV3", "min_share_down": 0.01},
    {"severity": "SEV3", "min_share_degraded": 0.01},
    {"severity": "SEV4"},
)


def impact_facts(facts):
    """Normalize impact facts: share_down / share_degraded (0..1), tier (1 = most critical), users, data_loss."""
    facts = dict(facts or {})
    if "probes" in facts and "counts" in facts:  # a health_check result
        total = max(1, facts.get("total") or len(facts["probes"]))
        facts = {
            "share_down": facts["counts"].get("down", 0) / total,
            "share_degraded": facts["counts"].get("degraded", 0) / total,
        }
    return {
        "share_down": float(facts.get("share_down", 0) or 0),
        "share_degraded": float(facts.get("share_degraded", 0) or 0),
        "tier": int(facts.get("tier", 3) or 3),
        "users_affected": int(facts.get("users_affected", 0) or 0),
        "data_loss": bool(facts.get("data_loss", False)),
    }


def classify_severity(facts, rules=None, tier=None):
    """The SEV level of an impact, by the first matching rule (see DEFAULT_RULES)."""
    impact = impact_facts(facts)
    if tier is not None:
        impact["tier"] = int(tier)
    for rule in rules or DEFAULT_RULES:
        if rule.get("severity") not in SEVERITY_ORDER:
            raise ValueError(f"rule {rule!r} needs severity SEV1..SEV4")
        if "min_share_down" in rule and impact["share_down"] < rule["min_share_down"]:
            continue
        if "min_share_degraded" in rule and impact["share_degraded"] < rule["min_share_degraded"]:
            continue
        if "max_tier" in rule and impact["tier"] > rule["max_tier"]:
            continue
        if "min_users" in rule and impact["users_affected"] < rule["min_users"]:
            continue
        if rule.get("data_loss") and not impact["data_loss"]:
            continue
        return rule["severity"]
    return "SEV4"


def error_budget(downtime_s, slo, window_days=30):
    """Downtime against an availability SLO over a window: budget, consumed, remaining."""
    slo = float(slo)
    if not 0 < slo < 1:
        raise ValueError(f"slo must be between 0 and 1 (e.g. 0.999), got {slo}")
    budget = (1 - slo) * window_days * 86400
    consumed = max(0.0, float(downtime_s))
    return {
        "slo": slo,
        "window_days": window_days,
        "budget_s": round(budget, 3),
        "consumed_s": round(consumed, 3),
        "remaining_s": round(max(0.0, budget - consumed), 3),
        "consumed_ratio": round(consumed / budget, 6) if budget else None,
        "exhausted": consumed >= budget,
    }


def parse_time(value):
    """An aware datetime from a datetime or ISO 8601 text (``2026-11-23T12:00:00Z``, an offset, a space
    instead of ``T``; naive means UTC). ValueError says how to write it."""
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
        if " " in text and "T" not in text:
            text = text.replace(" ", "T", 1)
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"cannot read {value!r} as a time: use ISO 8601, e.g. 2026-11-23T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def seconds_between(start, end):
    return (parse_time(end) - parse_time(start)).total_seconds()


def humanize(seconds):
    """``3723.5`` -> ``1h 02m 04s``; under a minute keeps tenths (``4.2s``)."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"
