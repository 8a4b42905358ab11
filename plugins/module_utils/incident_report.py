# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering and writing the post-incident review and the status page.

Shared by the ``incident_report`` module, the ``communicate`` and ``postmortem`` roles (through that module)
and ``mttr report``: ``render_markdown`` / ``render_html`` / ``render_json`` render a review built by
``incident_review.build_report`` with the templates of ``incident_templates`` (Jinja2) and the chart of
``incident_chart``; ``render_status_page`` renders ``build_status_page``; ``write_files`` writes only what
differs, atomically, and says what changed (or would, in check mode).
"""

from __future__ import annotations

import json
import os
import tempfile
import traceback

try:
    import jinja2
except ImportError:
    HAS_JINJA2 = False
    JINJA2_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_JINJA2 = True
    JINJA2_IMPORT_ERROR = None

from ansible_collections.mttr.recovery.plugins.module_utils.incident_chart import (
    chart_unavailable,
    data_uri,
    draw_chart,
)
from ansible_collections.mttr.recovery.plugins.module_utils.incident_review import FORMATS, short_time
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentError
from ansible_collections.mttr.recovery.plugins.module_utils.incident_templates import HTML, MARKDOWN, STATUS_PAGE


def impact_lines(report):
    impact = report["impact"]
    until = "now (ongoing)" if impact["ongoing"] else short_time(impact["restored_at"])
    lines = [
        f"Services: {', '.join(impact['services'])}",
        f"Severity: {impact['severity']}",
        f"Duration: {impact['downtime']}, from {short_time(impact['started_at'])} to {until}",
    ]
    if "probes_total" in impact:
        lines.append(f"Probes down: {impact.get('probes_down', 0)} of {impact['probes_total']}")
    if "users_affected" in impact:
        lines.append(f"Users affected: {impact['users_affected']}")
    if "data_loss" in impact:
        lines.append(f"Data loss: {'yes' if impact['data_loss'] else 'no'}")
    return lines


def budget_lines(report):
    budget = report["error_budget"]
    return [
        f"SLO: {budget['slo_percent']} % over {budget['window_days']} days, a budget of {budget['budget']} of downtime",
        f"This incident: {budget['consumed']} ({budget['consumed_percent']} % of the budget)",
        f"Remaining after it: {budget['remaining']}" + (" (exhausted)" if budget["exhausted"] else ""),
    ]


def _markdown_text(value):
    return str(value).replace("\r", " ").replace("\n", " ")


def _markdown_cell(value):
    return _markdown_text(value or "").replace("|", "\\|")


def _environment(autoescape):
    if not HAS_JINJA2:
        raise IncidentError("rendering reports needs the jinja2 Python library (it comes with ansible-core)")
    env = jinja2.Environment(
        autoescape=autoescape, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )
    env.filters.update({"when": short_time, "md": _markdown_text, "cell": _markdown_cell})
    return env


def render_markdown(report, chart_ref=None, chart_note=None):
    """The review in Markdown; the chart is an image reference to ``chart_ref`` (a file beside it), else a note."""
    note = chart_note or chart_unavailable() or "The timeline chart is drawn in the HTML report."
    return (
        _environment(False)
        .from_string(MARKDOWN)
        .render(
            r=report, chart_ref=chart_ref, chart_note=note, impact=impact_lines(report), budget=budget_lines(report)
        )
    )


def render_html(report, chart=True):
    """The review as one HTML page, the chart embedded as a PNG data URI (or a note saying what it needs)."""
    png = draw_chart(report) if chart else None
    if png:
        uri, note = data_uri(png), None
    else:
        uri, note = None, (chart_unavailable() if chart else None) or "The timeline chart was turned off."
    lines = {"impact": impact_lines(report), "budget": budget_lines(report)}
    return _environment(True).from_string(HTML).render(r=report, chart_uri=uri, chart_note=note, **lines)


def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def render_status_page(page, title="Service status"):
    return _environment(True).from_string(STATUS_PAGE).render(page=page, title=title)


def chart_path_for(dest):
    """Where the Markdown report's chart goes: ``<dest without .md>.timeline.png``."""
    root, ext = os.path.splitext(dest)
    return (root if ext.lower() in (".md", ".markdown") else dest) + ".timeline.png"


def render_files(report, fmt, dest=None, chart=True):
    """``{path: bytes}`` to write for a report in ``fmt`` at ``dest`` (None: the content under the key None).

    Markdown written to a file gets its chart as a PNG beside it; on standard output it gets a note instead.
    """
    if fmt not in FORMATS:
        raise IncidentError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "json":
        return {dest: render_json(report).encode()}
    if fmt == "html":
        return {dest: render_html(report, chart=chart).encode()}
    files = {}
    png = draw_chart(report) if chart and dest else None
    if png:
        chart_file = chart_path_for(dest)
        files[chart_file] = png
        text = render_markdown(report, chart_ref=os.path.basename(chart_file))
    elif not chart:
        text = render_markdown(report, chart_note="The timeline chart was turned off.")
    elif dest is None:
        text = render_markdown(
            report,
            chart_note=chart_unavailable()
            or "The timeline chart is written beside the report when it goes to a file (-o / dest), "
            "and embedded in the HTML report.",
        )
    else:
        text = render_markdown(report)
    files[dest] = text.encode()
    return files


def write_files(files, check_mode=False):
    """Write each ``{path: bytes}`` whose content differs, atomically; return the paths that changed (or would).

    A replaced file keeps its mode; a new one gets the umask's default, as ``open()`` would give it.
    """
    changed = []
    for path, content in files.items():
        try:
            with open(path, "rb") as handle:
                if handle.read() == content:
                    continue
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise IncidentError(f"cannot read {path}: {exc}") from None
        changed.append(path)
        if not check_mode:
            _replace(path, content, mode)
    return changed


def _replace(path, content, mode):
    directory = os.path.dirname(os.path.abspath(path))
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".mttr-report-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise IncidentError(f"cannot write {path}: {exc}") from None
