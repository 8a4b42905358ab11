# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The review's timeline chart: a Gantt of the phases and the actions, drawn with matplotlib.

matplotlib is an optional extra: without it ``chart_unavailable`` says what to install and nothing fails.
"""

from __future__ import annotations

import base64
import io

from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import seconds_between
from ansible_collections.mttr.recovery.plugins.module_utils.incident_review import (
    CHART_EXTRA,
)

RESULT_COLOURS = {
    "ok": "#2e7d32",
    "changed": "#f9a825",
    "failed": "#c62828",
    "unreachable": "#6a1b9a",
    "ignored": "#ef6c00",
    "skipped": "#9e9e9e",
}


PHASE_COLOUR = "#1565c0"


MAX_CHART_ROWS = 30


def chart_unavailable():
    """Why the timeline chart cannot be drawn here, or None when it can."""
    try:
        import matplotlib  # noqa: F401  (only asking whether it is there)
    except ImportError:
        return f"The timeline chart needs {CHART_EXTRA}."
    return None


def draw_chart(report):
    """The Gantt of the phases and actions as PNG bytes; None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:
        return None

    rows = [(phase["name"], [(phase["start_s"], phase["end_s"], PHASE_COLOUR)]) for phase in report["phases"]]
    by_action = {}
    for action in report["actions"]:
        if action["result"] == "skipped":
            continue
        by_action.setdefault(action["action"], []).append(
            (action["start_s"], action["end_s"], RESULT_COLOURS.get(action["result"], "#455a64"))
        )
    hidden = max(0, len(by_action) - MAX_CHART_ROWS)
    rows += [(_clip(name), bars) for name, bars in list(by_action.items())[:MAX_CHART_ROWS]]

    span = max([report["elapsed_s"], 1.0] + [end for _name, bars in rows for _start, end, _colour in bars])
    scale, unit = (3600.0, "hours") if span > 3 * 3600 else (60.0, "minutes") if span > 180 else (1.0, "seconds")
    least = span * 0.004 / scale  # a one-second task in a four-hour incident stays visible

    figure = Figure(figsize=(10, 1.4 + 0.32 * max(len(rows), 1)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (_name, bars) in enumerate(rows):
        for start, end, colour in bars:
            axes.broken_barh(
                [(start / scale, max((end - start) / scale, least))], (index - 0.35, 0.7), facecolors=colour
            )
    for escalation in report["escalations"]:
        moment = seconds_between(report["incident"]["opened_at"], escalation["time"]) / scale
        axes.axvline(moment, color="#c62828", linestyle="--", linewidth=1)
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels([name for name, _bars in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, span / scale * 1.02)
    axes.set_xlabel(f"{unit} since the incident was opened")
    title = f"{report['incident']['id']} timeline"
    if hidden:
        title += f" ({hidden} more actions not drawn)"
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    legend = [Patch(color=PHASE_COLOUR, label="phase")] + [
        Patch(color=colour, label=result) for result, colour in RESULT_COLOURS.items() if result != "skipped"
    ]
    if report["escalations"]:
        legend.append(Line2D([0], [0], color="#c62828", linestyle="--", label="escalated"))
    axes.legend(handles=legend, fontsize=7, loc="best", ncol=4)
    figure.tight_layout()
    buffer = io.BytesIO()
    # No Software entry: the bytes depend on the data only, so an unchanged report stays unchanged.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _clip(name, width=48):
    return name if len(name) <= width else name[: width - 1] + "…"


def data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
