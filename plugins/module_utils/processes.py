# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a process still runs: one answer for the lab's pid files and the incident store's locks."""

from __future__ import annotations

import os


def pid_alive(pid):
    """Whether a process with this pid runs on this machine (signal 0 checks without signalling).

    A zombie (exited, not yet reaped by its parent) does not count as running.
    """
    if not pid or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return False
    return process_state(pid) not in ("Z", "X")


def process_state(pid):
    """The one-letter state from /proc (R, S, Z...); None where /proc does not tell."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def controller_pid():
    """The outermost ansible process above this module (the playbook run), when /proc shows it; else the parent."""
    found = None
    pid = os.getppid()
    for _depth in range(64):
        if pid <= 1:
            break
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            break
        if any(os.path.basename(arg).startswith(b"ansible") for arg in argv[:2]):
            found = pid
        pid = int(stat.rsplit(b")", 1)[1].split()[1])
    return found or os.getppid()
