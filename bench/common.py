"""What every benchmark runner here shares: logging with a time stamp, and medians with their range.

Imported as ``ansible_collections.mttr.recovery.bench.common`` (the repository is linked into the
virtualenv as the collection), like the tests' shared helpers.
"""

from __future__ import annotations

import os
import statistics
import sys
import time


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def spread(values):
    """Median, min, max and the runs themselves (None values left out); None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": median(values),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
        "runs": [round(v, 4) for v in values],
    }


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]
