"""``mttr report`` through the real CLI, on a store of its own."""

from __future__ import annotations

import re

from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore
from conftest import run_mttr


def recorded_incident(path):
    with IncidentStore(str(path)) as store:
        incident_id = store.open(["orders"], "SEV2", "Orders table dropped", now="2026-11-23T09:00:00Z")[0]["id"]
        store.transition(incident_id, "acknowledged", now="2026-11-23T09:04:00Z")
        store.append(
            incident_id,
            "task",
            "",
            host="pg1",
            action="Restore the backup",
            result="changed",
            duration=42.0,
            time="2026-11-23T09:20:00Z",
        )
        store.transition(incident_id, "resolved", now="2026-11-23T09:30:00Z")
    return incident_id


def test_markdown_to_stdout_and_html_to_a_file(tmp_path):
    store = tmp_path / "incidents.sqlite"
    incident_id = recorded_incident(store)
    shown = run_mttr("report", incident_id, "--store", str(store))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"# Post-incident review (draft): {incident_id}\n")
    assert "| +19m 18s | pg1 | Restore the backup | changed | 42.0s |" in shown.stdout
    assert "## Follow-up items" in shown.stdout

    out = tmp_path / "out" / "review.html"
    out.parent.mkdir()
    written = run_mttr(
        "report", incident_id, "--store", str(store), "--format", "html", "-o", str(out), "--slo", "0.99"
    )
    assert written.returncode == 0, written.stderr
    assert written.stdout == "" and f"Wrote {out}" in written.stderr
    html = out.read_text()
    assert re.search(r'<img class="chart" [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{100,}">', html)
    assert "SLO: 99 % over 30 days" in html
    again = run_mttr("report", incident_id, "--store", str(store), "--format", "html", "-o", str(out), "--slo", "0.99")
    assert f"Unchanged: {out}" in again.stderr


def test_markdown_file_gets_its_chart_beside_it(tmp_path):
    store = tmp_path / "incidents.sqlite"
    incident_id = recorded_incident(store)
    out = tmp_path / "review.md"
    result = run_mttr("report", incident_id, "--store", str(store), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "review.timeline.png").read_bytes().startswith(b"\x89PNG")
    assert "![Timeline of" in out.read_text() and "(review.timeline.png)" in out.read_text()


def test_unknown_incident_is_one_clear_line(tmp_path):
    store = tmp_path / "incidents.sqlite"
    recorded_incident(store)
    result = run_mttr("report", "INC-20990101-001", "--store", str(store))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == f"mttr: error: no incident INC-20990101-001 in {store}: check the id\n"
    missing = run_mttr("report", "INC-1", "--store", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 1 and "no incident store at" in missing.stderr


def test_output_into_a_missing_directory_is_one_clear_line(tmp_path):
    store = tmp_path / "incidents.sqlite"
    incident_id = recorded_incident(store)
    for fmt in ("md", "html"):
        out = tmp_path / "reviews" / "2026" / f"review.{fmt}"
        result = run_mttr("report", incident_id, "--store", str(store), "--format", fmt, "-o", str(out))
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert f"{tmp_path / 'reviews'} does not exist" in result.stderr
        assert f"mkdir -p {out.parent}" in result.stderr
        assert not (tmp_path / "reviews").exists(), "the report created the missing directory"


def test_output_onto_a_directory_is_one_clear_line(tmp_path):
    store = tmp_path / "incidents.sqlite"
    incident_id = recorded_incident(store)
    result = run_mttr("report", incident_id, "--store", str(store), "-o", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert f"{tmp_path} is a directory" in result.stderr
