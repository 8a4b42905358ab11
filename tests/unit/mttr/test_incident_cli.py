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


def test_read_only_commands_on_an_empty_home_create_nothing(tmp_path):
    home = tmp_path / "home"
    listed = run_mttr("incident", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    assert "No incidents" in listed.stdout and str(home / "incidents.sqlite") in " ".join(listed.stdout.split())
    listed_json = run_mttr("incident", "list", "--json", home=home)
    assert listed_json.returncode == 0 and json.loads(listed_json.stdout) == []
    shown = run_mttr("incident", "show", "INC-20260101-001", home=home)
    assert shown.returncode == 1 and shown.stderr.count("\n") == 1 and "Traceback" not in shown.stderr
    assert "no incident INC-20260101-001" in shown.stderr and "no incident store at" in shown.stderr
    assert not home.exists(), "a read-only command created the home"


def test_commands_on_a_missing_store_create_nothing_but_open_does(tmp_path):
    store = tmp_path / "incidents.sqlite"
    for args in (["list"], ["show", "INC-20260101-001"], ["ack", "INC-20260101-001"], ["resolve", "INC-20260101-001"]):
        result = run_mttr("incident", "--store", str(store), *args)
        assert "Traceback" not in result.stderr
        assert list(tmp_path.iterdir()) == [], f"'mttr incident {args[0]}' created {list(tmp_path.iterdir())}"
    resolved = run_mttr("incident", "--store", str(store), "resolve", "INC-20260101-001")
    assert resolved.returncode == 1 and "no incident INC-20260101-001" in resolved.stderr
    assert "mttr incident open" in resolved.stderr
    opened = run_mttr("incident", "--store", str(store), "open", "--service", "orders")
    assert opened.returncode == 0 and store.exists()


def test_list_of_an_existing_store_leaves_it_as_it_was(tmp_path):
    store = tmp_path / "incidents.sqlite"
    opened = run_mttr("incident", "--store", str(store), "open", "--service", "orders")
    assert opened.returncode == 0, opened.stderr
    before = sorted(path.name for path in tmp_path.iterdir()), store.stat().st_mtime_ns
    listed = run_mttr("incident", "--store", str(store), "list", "--status", "resolved")
    assert listed.returncode == 0 and "No incidents with status resolved" in " ".join(listed.stdout.split())
    assert run_mttr("incident", "--store", str(store), "show", opened.stdout.split()[1]).returncode == 0
    assert (sorted(path.name for path in tmp_path.iterdir()), store.stat().st_mtime_ns) == before


def test_open_takes_the_service_lock_like_the_module(tmp_path):
    """One lock rule for the CLI and the module: a second incident on the same service is refused."""
    store = str(tmp_path / "incidents.sqlite")
    first = run_mttr("incident", "--store", store, "open", "--service", "orders", "--service", "payments")
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.split()[1]

    second = run_mttr("incident", "--store", store, "open", "--service", "orders")
    assert second.returncode == 1
    assert f"the recovery lock on orders is held by incident {first_id}" in second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    listed = json.loads(run_mttr("incident", "--store", store, "list", "--json").stdout)
    assert [record["id"] for record in listed] == [first_id], "the refused open must not leave an incident"

    other = run_mttr("incident", "--store", store, "open", "--service", "search")
    assert other.returncode == 0, other.stderr

    taken = run_mttr("incident", "--store", store, "open", "--service", "orders", "--takeover")
    assert taken.returncode == 0, taken.stderr
    taken_id = taken.stdout.split()[1]
    shown = json.loads(run_mttr("incident", "--store", store, "show", first_id, "--json").stdout)
    assert any(entry["action"] == "lock_lost" for entry in shown["timeline"])

    assert run_mttr("incident", "--store", store, "resolve", taken_id).returncode == 0
    assert run_mttr("incident", "--store", store, "resolve", first_id).returncode == 0
    after = run_mttr("incident", "--store", store, "open", "--service", "orders")
    assert after.returncode == 0, "resolving releases the lock"
