"""The post-incident report engine on real incident stores: sections, derivations, Markdown, HTML and the chart."""

from __future__ import annotations

import base64
import datetime
import os
import pathlib
import re
import stat
import sys

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils import incident_chart as chart
from ansible_collections.mttr.recovery.plugins.module_utils import incident_report as engine
from ansible_collections.mttr.recovery.plugins.module_utils import incident_review as review
from ansible_collections.mttr.recovery.plugins.module_utils import redact
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
    IncidentError,
    IncidentStore,
    UnknownIncident,
    timestamp,
)

T0 = datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def at(seconds):
    return timestamp(T0 + datetime.timedelta(seconds=seconds))


@pytest.fixture
def store():
    with IncidentStore(":memory:") as opened:
        yield opened


def rough_incident(store):
    """A SEV2 that was escalated, with a retried action, a failed one and an undelivered status update."""
    record = store.open(["orders-db", "orders-api"], "SEV2", "Orders API returns 502", now=at(0))[0]
    incident_id = record["id"]
    store.append(incident_id, "impact", "probed", result={"probes_down": 3, "probes_total": 4}, time=at(30))
    store.transition(incident_id, "acknowledged", note="on it", now=at(120))
    store.append(
        incident_id, "task", "", host="pg2", action="Promote the standby", result="failed", duration=4.0, time=at(200)
    )
    store.append(
        incident_id, "task", "", host="pg2", action="Promote the standby", result="changed", duration=2.5, time=at(260)
    )
    store.append(
        incident_id,
        "task",
        "backend lb/s2 | not found",
        host="lb1",
        action="Move HAProxy",
        result="failed",
        duration=1.0,
        time=at(300),
    )
    store.append(incident_id, "task", "", host="lb1", action="Skip me", result="skipped", duration=0.0, time=at(301))
    store.append(incident_id, "note", "status update [explain] to webhook ops-chat: failed: HTTP 500", time=at(310))
    store.append(incident_id, "note", "status update [explain] to webhook ops-json: posted: HTTP 200", time=at(311))
    store.transition(incident_id, "escalated", note="paging the database team", now=at(400))
    store.transition(incident_id, "mitigated", note="writes accepted again", now=at(900))
    store.transition(incident_id, "resolved", now=at(5000))
    return incident_id


def smooth_incident(store, severity="SEV3"):
    record = store.open(["web"], severity, "Web slow", now=at(0))[0]
    incident_id = record["id"]
    for index, name in enumerate(("Probe the service", "Restart the app", "Validate")):
        store.append(incident_id, "task", "", host="app1", action=name, result="ok", duration=1.5, time=at(60 + index))
    store.append(incident_id, "playbook", "recover.yml succeeded", action="recover.yml", result="ok", time=at(70))
    store.transition(incident_id, "resolved", now=at(90))
    return incident_id


def report_of(store, incident_id, **kwargs):
    return review.build_report(store.get(incident_id), store.timeline(incident_id), **kwargs)


def test_sections_durations_and_budget(store):
    report = report_of(store, rough_incident(store))
    assert report["incident"]["severity"] == "SEV2" and report["incident"]["status"] == "resolved"
    assert report["as_of"] == at(5000) and report["phase"] == "study"
    assert report["summary"].startswith("INC-20261123-001 (SEV2) affected orders-api, orders-db: Orders API")
    assert "acknowledged after 2m 00s, mitigated after 15m 00s, resolved after 1h 23m 20s" in report["summary"]
    assert [(m["key"], m["seconds"], m["verdict"]) for m in report["milestones"]] == [
        ("acknowledge", 120.0, "met"),
        ("mitigate", 900.0, "met"),
        ("resolve", 5000.0, "met"),
    ]
    # impact runs from opening to mitigation; the probes come from the impact entry
    impact = report["impact"]
    assert (impact["downtime_s"], impact["ongoing"], impact["restored_at"]) == (900.0, False, at(900))
    assert (impact["probes_down"], impact["probes_total"], impact["share_down"]) == (3, 4, 0.75)
    budget = report["error_budget"]
    assert (budget["budget_s"], budget["consumed_s"], budget["remaining_s"]) == (2592.0, 900.0, 1692.0)
    assert budget["consumed_percent"] == 34.72 and budget["budget"] == "43m 12s"
    assert [(p["name"], p["start_s"], p["end_s"]) for p in report["phases"]] == [
        ("open -> acknowledged", 0.0, 120.0),
        ("acknowledged -> mitigated", 120.0, 900.0),
        ("mitigated -> resolved", 900.0, 5000.0),
    ]
    promote = [a for a in report["actions"] if a["action"] == "Promote the standby"]
    assert [(a["start_s"], a["end_s"], a["duration"], a["result"]) for a in promote] == [
        (196.0, 200.0, "4.0s", "failed"),
        (257.5, 260.0, "2.5s", "changed"),
    ]
    assert report["action_counts"] == {"failed": 2, "changed": 1, "skipped": 1}
    assert report["hosts"] == ["lb1", "pg2"]
    assert report["slowest"][0]["action"] == "Promote the standby"
    assert [e["kind"] for e in report["timeline"]][:2] == ["status", "impact"]
    assert report["timeline"][2]["offset"] == "+2m 00s"


def test_what_went_well_and_wrong_come_from_the_timeline(store):
    report = report_of(store, rough_incident(store))
    well, wrong = report["went_well"], report["went_wrong"]
    assert "Acknowledged in 2m 00s, within the SEV2 target of 15m 00s." in well
    assert "'Promote the standby' on pg2 recovered after 1 failed attempt(s)." in well
    assert "1 status update(s) delivered (explain)." in well
    assert any(item.startswith("Escalated at 2026-11-23 09:06:40 UTC") for item in wrong)
    assert "'Move HAProxy' failed on lb1: backend lb/s2 | not found." in wrong
    assert "'Promote the standby' on pg2 needed 2 attempts (1 failed)." in wrong
    assert "The explain status update to webhook ops-chat failed: HTTP 500." in wrong
    assert not any("Skip me" in item for item in well + wrong)
    assert "Why did 'Move HAProxy' fail on lb1?" in report["questions"]
    assert "Why did 'Promote the standby' need retries on pg2?" in report["questions"]
    assert any("escalation" in question for question in report["questions"])
    assert report["follow_ups"][0].startswith("Write down the root cause")
    assert "Fix or harden 'Move HAProxy' (failed on lb1)." in report["follow_ups"]
    assert "Check webhook ops-chat: a status update did not get through." in report["follow_ups"]
    assert [(c["phase"], c["webhook"], c["outcome"]) for c in report["communications"]] == [
        ("explain", "ops-chat", "failed"),
        ("explain", "ops-json", "posted"),
    ]
    # the latest update is the last status change, not a status-update receipt nor a task
    assert report["latest_update"]["message"] == "mitigated -> resolved"


def test_smooth_recovery_and_missed_targets(store):
    smooth = report_of(store, smooth_incident(store))
    assert "All 3 actions succeeded at the first attempt." in smooth["went_well"]
    assert "Playbook run: recover.yml succeeded." in smooth["went_well"]
    assert smooth["went_wrong"] == []
    # a SEV1 acknowledged after 10 minutes, still not mitigated after two hours
    record = store.open(["payments"], "SEV1", "Payments down", now=at(0))[0]
    store.transition(record["id"], "acknowledged", now=at(600))
    store.append(record["id"], "note", "still digging", time=at(7200))
    report = report_of(store, record["id"], targets={"SEV1": {"resolve": 7000}})
    assert report["as_of"] == at(7200) and report["incident"]["status"] == "acknowledged"
    assert "Acknowledged in 10m 00s, over the SEV1 target of 5m 00s." in report["went_wrong"]
    assert "Not mitigated after 2h 00m 00s, over the SEV1 target of 1h 00m 00s." in report["went_wrong"]
    assert "Not resolved after 2h 00m 00s, over the SEV1 target of 1h 56m 40s." in report["went_wrong"]
    assert report["milestones"][1]["elapsed"] == "not yet (2h 00m 00s so far)"
    assert report["impact"]["ongoing"] is True and report["impact"]["downtime_s"] == 7200.0
    # two hours against 43 minutes of budget: exhausted, and the follow-ups say so
    assert report["error_budget"]["exhausted"] is True
    assert "Apply the error-budget policy: the budget is exhausted." in report["follow_ups"]
    assert "Resolve the incident, then regenerate this review." in report["follow_ups"]
    assert report["phases"][-1] == {
        "name": "acknowledged -> mitigated",
        "start_s": 600.0,
        "end_s": 7200.0,
        "open_ended": True,
    }
    assert report["phase"] == "acknowledge"


def test_slo_and_impact_parameters(store):
    incident_id = smooth_incident(store)
    report = report_of(store, incident_id, slo=0.99, window_days=7, impact={"users_affected": 40, "data_loss": False})
    assert report["error_budget"]["budget_s"] == pytest.approx(0.01 * 7 * 86400)
    assert report["impact"]["users_affected"] == 40 and report["impact"]["data_loss"] is False
    health = {"counts": {"healthy": 3, "down": 1}, "total": 4}
    assert report_of(store, incident_id, impact=health)["impact"]["probes_down"] == 1
    with pytest.raises(ValueError, match="slo must be between 0 and 1"):
        report_of(store, incident_id, slo=99.9)


def test_markdown_with_the_chart_beside_it(store, tmp_path):
    report = report_of(store, rough_incident(store))
    dest = str(tmp_path / "reviews" / "INC-1.md")
    files = engine.render_files(report, "md", dest=dest)
    chart = str(tmp_path / "reviews" / "INC-1.timeline.png")
    assert list(files) == [chart, dest]
    assert files[chart].startswith(PNG_SIGNATURE)
    text = files[dest].decode()
    for heading in (
        "# Post-incident review (draft): INC-20261123-001",
        "## Timeline chart",
        "## Impact",
        "## SLO and error budget",
        "## What went well",
        "## What went wrong",
        "## Actions",
        "## Timeline",
        "## Open questions for the root cause",
        "## Follow-up items",
    ):
        assert f"\n{heading}\n" in "\n" + text
    assert "![Timeline of INC-20261123-001](INC-1.timeline.png)" in text
    assert "| Acknowledged | 2m 00s (target 15m 00s, met) |" in text
    assert "| +3m 16s | pg2 | Promote the standby | failed | 4.0s |" in text
    assert "backend lb/s2 \\| not found" in text  # a pipe in a message does not break the table
    assert "- Probes down: 3 of 4" in text
    assert "- [ ] Fix or harden 'Move HAProxy' (failed on lb1)." in text
    assert engine.write_files(files) == [chart, dest]
    assert engine.write_files(engine.render_files(report, "md", dest=dest)) == []  # same bytes: unchanged


def test_markdown_on_stdout_has_a_note_instead_of_the_chart(store):
    report = report_of(store, smooth_incident(store))
    files = engine.render_files(report, "md")
    assert list(files) == [None]
    assert "_The timeline chart is written beside the report when it goes to a file" in files[None].decode()
    off = engine.render_files(report, "md", dest="/nonexistent/x.md", chart=False)
    assert list(off) == ["/nonexistent/x.md"] and "chart was turned off" in off["/nonexistent/x.md"].decode()


def test_html_embeds_the_chart_as_a_png_data_uri(store):
    incident_id = rough_incident(store)
    store.append(incident_id, "note", "<script>alert(1)</script> and password=hunter2", time=at(5000))
    report = report_of(store, incident_id)
    html = engine.render_files(report, "html", dest="/x/INC.html")["/x/INC.html"].decode()
    match = re.search(r'<img class="chart" alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    assert match, "the HTML has no embedded chart"
    assert base64.b64decode(match.group(1)).startswith(PNG_SIGNATURE)
    assert "<h2>What went wrong</h2>" in html and "<h2>Follow-up items</h2>" in html
    assert '<td class="failed">failed</td>' in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "hunter2" not in html and "password=********" in html
    # the same store gives the same bytes: the chart and the page do not depend on the clock
    assert engine.render_html(report) == html


def test_without_matplotlib_the_html_says_what_to_install(store, monkeypatch):
    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    report = report_of(store, smooth_incident(store))
    assert chart.draw_chart(report) is None
    html = engine.render_html(report)
    assert "data:image/png" not in html
    assert '<p class="note">The timeline chart needs matplotlib' in html
    files = engine.render_files(report, "md", dest="/x/INC.md")
    assert list(files) == ["/x/INC.md"] and "_The timeline chart needs matplotlib" in files["/x/INC.md"].decode()


def test_chart_is_drawn_for_many_actions_and_stays_deterministic(store):
    record = store.open(["big"], "SEV3", "many actions", now=at(0))[0]
    for index in range(40):
        store.append(
            record["id"],
            "task",
            "",
            host=f"h{index % 3}",
            action=f"Step {index}",
            result="ok",
            duration=0.2,
            time=at(10 + index),
        )
    report = report_of(store, record["id"])
    png = chart.draw_chart(report)
    assert png.startswith(PNG_SIGNATURE) and png == chart.draw_chart(report)


def test_json_format_is_the_data(store):
    report = report_of(store, smooth_incident(store))
    text = engine.render_files(report, "json")[None].decode()
    assert '"went_well": [' in text and "data:image" not in text
    with pytest.raises(IncidentError, match="format must be one of md, html, json"):
        engine.render_files(report, "pdf")


def test_status_page_lists_unresolved_incidents_first(store):
    resolved = smooth_incident(store)
    minor = store.open(["search"], "SEV4", "Search is slow", now=at(100))[0]["id"]
    major = store.open(["orders"], "SEV1", "Orders down", now=at(50))[0]["id"]
    store.transition(major, "acknowledged", note="failing over", now=at(200))
    store.append(major, "note", "status update [acknowledge] to webhook ops: posted: HTTP 200", time=at(210))
    incidents = [(record, store.timeline(record["id"])) for record in store.list()]
    page = review.build_status_page(incidents)
    assert [item["id"] for item in page["active"]] == [major, minor]
    assert [item["id"] for item in page["resolved"]] == [resolved]
    assert page["worst"] == "SEV1" and page["affected"] == ["orders", "search"]
    assert page["active"][0]["latest"]["message"] == "open -> acknowledged: failing over"
    assert page["updated"] == at(200)
    html = engine.render_status_page(page, title="Orders status")
    assert "<title>Orders status</title>" in html
    assert '<p class="banner SEV1">2 active incidents affecting orders, search</p>' in html
    assert html.index(major) < html.index(minor) < html.index(resolved)
    assert review.build_status_page(incidents, limit=0)["resolved"] == []
    calm = engine.render_status_page(review.build_status_page([(store.get(resolved), store.timeline(resolved))]))
    assert "All systems operational" in calm


def test_load_reads_without_writing(tmp_path):
    path = str(tmp_path / "incidents.sqlite")
    with pytest.raises(IncidentError, match="no incident store at"):
        review.load(path, "INC-1")
    assert review.load_all(path) == []
    with IncidentStore(path) as writer:
        incident_id = writer.open(["web"], "SEV3", now=at(0))[0]["id"]
    before = {name: os.stat(tmp_path / name).st_mtime_ns for name in os.listdir(tmp_path)}
    record, timeline = review.load(path, incident_id)
    assert record["id"] == incident_id and timeline[0]["action"] == "open"
    assert [pair[0]["id"] for pair in review.load_all(path)] == [incident_id]
    with pytest.raises(UnknownIncident, match=f"no incident INC-20990101-001 in {path}"):
        review.load(path, "INC-20990101-001")
    assert {name: os.stat(tmp_path / name).st_mtime_ns for name in os.listdir(tmp_path)} == before


def test_write_files_check_mode_and_modes(tmp_path):
    path = str(tmp_path / "out" / "report.md")
    assert engine.write_files({path: b"one"}, check_mode=True) == [path]
    assert not os.path.exists(path)
    assert engine.write_files({path: b"one"}) == [path]
    os.chmod(path, 0o600)
    assert engine.write_files({path: b"one"}) == []
    assert engine.write_files({path: b"two"}) == [path]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # a replaced file keeps its mode
    assert pathlib.Path(path).read_bytes() == b"two"
    assert os.listdir(tmp_path / "out") == ["report.md"]  # no temporary files left


def test_chart_path_and_mask():
    assert engine.chart_path_for("/r/INC-1.md") == "/r/INC-1.timeline.png"
    assert engine.chart_path_for("/r/INC-1.txt") == "/r/INC-1.txt.timeline.png"
    assert redact.mask("token: abc123 api_key=zz") == "token: ******** api_key=********"
    assert review.PHASE_OF_STATUS["escalated"] == "acknowledge"


def test_data_loss_risk_is_what_went_wrong_with_a_question_and_a_follow_up(store):
    incident_id = smooth_incident(store)
    clean = report_of(store, incident_id)
    assert clean["risks"] == [] and not any("Data-loss" in item for item in clean["went_wrong"])
    store.append(
        incident_id,
        "risk",
        "failover pg1 -> pg2: DATA LOSS POSSIBLE: 4096 bytes of WAL never received",
        host="pg1",
        action="Drain, fence, promote",
        result="changed",
        time=at(65),
    )
    report = report_of(store, incident_id)
    assert [risk["message"] for risk in report["risks"]] == [
        "failover pg1 -> pg2: DATA LOSS POSSIBLE: 4096 bytes of WAL never received"
    ]
    assert any(item.startswith("Data-loss risk at") and "4096 bytes" in item for item in report["went_wrong"])
    assert any("Were writes lost?" in question for question in report["questions"])
    assert any("Reconcile the writes at risk" in item for item in report["follow_ups"])
