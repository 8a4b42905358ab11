"""``mttr incident`` through the real CLI, on a store of its own."""

from __future__ import annotations

import json

from conftest import run_mttr


def test_open_ack_resolve_show(tmp_path):
    store = str(tmp_path / "incidents.sqlite")
    opened = run_mttr(
        "incident",
        "--store",
        store,
        "open",
        "--service",
        "orders",
        "--severity",
        "SEV2",
        "--summary",
        "orders table dropped",
    )
    assert opened.returncode == 0, opened.stderr
    incident_id = opened.stdout.split()[1]
    assert incident_id.startswith("INC-")
    assert run_mttr("incident", "--store", store, "ack", incident_id, "--note", "on it").returncode == 0
    assert run_mttr("incident", "--store", store, "resolve", incident_id).returncode == 0
    again = run_mttr("incident", "--store", store, "resolve", incident_id)
    assert "unchanged" in again.stdout
    shown = json.loads(run_mttr("incident", "--store", store, "show", incident_id, "--json").stdout)
    assert shown["incident"]["status"] == "resolved"
    assert shown["incident"]["durations"]["time_to_resolve_s"] >= 0
    assert [e["action"] for e in shown["timeline"] if e["kind"] == "status"] == ["open", "acknowledged", "resolved"]
    listed = json.loads(run_mttr("incident", "--store", store, "list", "--json").stdout)
    assert [r["id"] for r in listed] == [incident_id]


def test_unknown_incident_is_one_clear_line(tmp_path):
    result = run_mttr("incident", "--store", str(tmp_path / "incidents.sqlite"), "resolve", "INC-20260101-999")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no incident INC-20260101-999" in result.stderr
    assert "Traceback" not in result.stderr
