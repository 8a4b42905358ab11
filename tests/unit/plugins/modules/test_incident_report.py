"""The incident_report module through the unit-test harness, on real SQLite stores."""

from __future__ import annotations

import functools
import os
import pathlib
import stat

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from ansible_collections.mttr.recovery.plugins.modules import incident_report
from ansible_collections.mttr.recovery.tests.unit.plugins.modules import utils
from ansible_collections.mttr.recovery.tests.unit.plugins.modules.utils import AnsibleFailJson

run_module = functools.partial(utils.run_module, incident_report)


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "mttr" / "incidents.sqlite")
    with IncidentStore(path) as writer:
        record = writer.open(["orders"], "SEV2", "Orders down", now="2026-11-23T09:00:00Z")[0]
        writer.append(
            record["id"],
            "task",
            "",
            host="pg1",
            action="Promote",
            result="changed",
            duration=1.2,
            time="2026-11-23T09:03:00Z",
        )
        writer.transition(record["id"], "resolved", now="2026-11-23T09:10:00Z")
        writer.open(["search"], "SEV3", "Search slow", now="2026-11-23T10:00:00Z")
    return path


def test_html_review_check_mode_then_write_then_unchanged(store, tmp_path):
    dest = str(tmp_path / "reviews" / "INC.html")
    args = {"store": store, "id": "INC-20261123-001", "dest": dest}
    checked = run_module(args, check=True, diff=True)
    assert checked["changed"] is True and checked["changed_paths"] == [dest]
    assert not os.path.exists(dest)
    assert checked["diff"]["before"] == "" and "data:image/png;base64,…" in checked["diff"]["after"]
    assert checked["chart"] is True and checked["report"]["phase"] == "study"

    written = run_module(args)
    assert written["changed"] is True and written["path"] == dest and written["paths"] == [dest]
    html = pathlib.Path(dest).read_text(encoding="utf-8")
    assert '<img class="chart"' in html and 'src="data:image/png;base64,' in html
    assert written["incident"]["status"] == "resolved"
    assert "content" not in written

    again = run_module(args, check=True)
    assert again["changed"] is False and again["changed_paths"] == []
    assert run_module(args)["changed"] is False


def test_markdown_writes_its_chart_beside_it_and_sets_the_mode(store, tmp_path):
    dest = str(tmp_path / "INC.md")
    result = run_module({"store": store, "id": "INC-20261123-001", "format": "md", "dest": dest, "mode": "0640"})
    chart = str(tmp_path / "INC.timeline.png")
    assert result["changed"] is True and result["paths"] == [chart, dest] and result["path"] == dest
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o640 and stat.S_IMODE(os.stat(chart).st_mode) == 0o640
    assert "![Timeline of INC-20261123-001](INC.timeline.png)" in pathlib.Path(dest).read_text(encoding="utf-8")
    mode_only = run_module({"store": store, "id": "INC-20261123-001", "format": "md", "dest": dest, "mode": "0600"})
    assert mode_only["changed"] is True and mode_only["changed_paths"] == []
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_without_dest_the_review_is_returned(store):
    result = run_module({"store": store, "id": "INC-20261123-001", "format": "json", "slo": 0.99})
    assert result["changed"] is False and result["paths"] == [] and result["path"] is None
    assert '"went_well"' in result["content"] and result["chart"] is False
    assert result["report"]["error_budget"]["slo"] == 0.99


def test_status_page(store, tmp_path):
    dest = str(tmp_path / "status" / "index.html")
    result = run_module({"store": store, "kind": "status_page", "dest": dest, "title": "Shop status"})
    assert result["changed"] is True and result["status_page"] == {"active": 1, "resolved": 1}
    page = pathlib.Path(dest).read_text(encoding="utf-8")
    assert "<title>Shop status</title>" in page and page.index("INC-20261123-002") < page.index("INC-20261123-001")
    assert run_module({"store": store, "kind": "status_page", "dest": dest, "title": "Shop status"})["changed"] is False


def test_status_page_defaults_to_the_mttr_home(store, tmp_path, monkeypatch):
    monkeypatch.setenv("MTTR_HOME", str(tmp_path / "home"))
    result = run_module({"store": store, "kind": "status_page"})
    assert result["path"] == str(tmp_path / "home" / "status" / "index.html")
    assert os.path.exists(result["path"])


def test_failures_are_clear(store, tmp_path):
    unknown = run_module({"store": store, "id": "INC-20990101-001"}, outcome=AnsibleFailJson)
    assert unknown["msg"] == f"no incident INC-20990101-001 in {store}: check the id"
    missing = run_module({"store": str(tmp_path / "none.sqlite"), "id": "INC-1"}, outcome=AnsibleFailJson)
    assert "no incident store at" in missing["msg"]
    assert not os.path.exists(tmp_path / "none.sqlite")
    no_id = run_module({"store": store}, outcome=AnsibleFailJson)
    assert "kind is postmortem but all of the following are missing: id" in no_id["msg"]
    bad_slo = run_module({"store": store, "id": "INC-20261123-001", "slo": 1.5}, outcome=AnsibleFailJson)
    assert "slo must be between 0 and 1" in bad_slo["msg"]
