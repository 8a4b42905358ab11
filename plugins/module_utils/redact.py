# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credential-shaped text masked before it is stored or shown (the timeline, the reviews)."""

from __future__ import annotations

import re

SECRET_RE = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)(\"?\s*[=:]\s*\"?)([^\s\"',;]+)"
)


def mask(text, limit=None):
    """Mask anything shaped like ``password=...``; cap at ``limit`` characters (with an ellipsis)."""
    if text is None:
        return ""
    text = SECRET_RE.sub(lambda m: m.group(1) + m.group(2) + "********", str(text))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
