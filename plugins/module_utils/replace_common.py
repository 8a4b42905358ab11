# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the replace engines share: their error and one polling waiter."""

from __future__ import annotations

import time


class ReplaceError(Exception):
    """A replacement cannot go on; the message says what is wrong and what to do.

    ``changed`` says whether something was already changed before it stopped (an instance started,
    a server added); ``result`` holds what the engine had done so far, for the module's failure.
    """

    def __init__(self, message, changed=False, result=None):
        super().__init__(message)
        self.changed = changed
        self.result = result or {}


def wait_until(probe, timeout, interval=0.1, clock=time.monotonic, sleep=time.sleep):
    """Call ``probe()`` until it returns something true (returned) or ``timeout`` seconds pass (None).

    The probe runs at least once, so a zero timeout is a single look.
    """
    deadline = clock() + timeout
    while True:
        value = probe()
        if value:
            return value
        if clock() >= deadline:
            return None
        sleep(interval)
