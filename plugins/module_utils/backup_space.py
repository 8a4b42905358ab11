# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Free space: which filesystem a restore writes to, whether it has room, and saying so when it is full.

A restore that runs out of space fails in its staging place and leaves the target as it was, but the
tool that ran out says it in its own words (tar's last line is "Exiting with failure status due to
previous errors"). These helpers name the filesystem, what was needed and what was free.
"""

from __future__ import annotations

import errno
import os
import re

from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import BackupError

DISK_FULL = os.strerror(errno.ENOSPC)  # "No space left on device"


def human(size):
    """Bytes as KiB, MiB or GiB with one decimal."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} bytes"


def _mounts():
    """(mount point, type) of every mounted filesystem, from /proc/self/mounts (empty elsewhere)."""
    try:
        with open("/proc/self/mounts") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            # spaces, tabs and backslashes in mount points are octal escapes (\040)
            point = re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), fields[1])
            mounts.append((point, fields[2]))
    return mounts


def existing(path):
    """``path``, or its nearest parent that exists (a restore may create the target's parents)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    return probe


def filesystem(path):
    """The filesystem holding ``path``: its mount point, type, free bytes and free inodes (None: no limit)."""
    probe = existing(path)
    stat = os.statvfs(probe)
    real = os.path.realpath(probe)
    mount, fstype = "/", "unknown"
    for point, kind in _mounts():  # the last, longest match is the one mounted on top
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(mount):
            mount, fstype = point, kind
    return {
        "mount": mount,
        "type": fstype,
        "free": stat.f_bavail * stat.f_frsize,
        "free_inodes": stat.f_favail if stat.f_files else None,
    }


def describe(fs):
    return f"{fs['mount']} ({fs['type']})"


def require_space(path, need, what, inodes=None, basis="the manifest"):
    """Raise BackupError when the filesystem of ``path`` has less than ``need`` bytes (or ``inodes``) free.

    Returns what was checked, for the result.
    """
    fs = filesystem(path)
    if fs["free"] < need:
        raise BackupError(
            f"not enough space on {describe(fs)} for {what}: {human(need)} needed ({basis}), {human(fs['free'])} "
            "free; free space there or restore elsewhere; nothing was changed"
        )
    if inodes and fs["free_inodes"] is not None and fs["free_inodes"] < inodes:
        raise BackupError(
            f"not enough inodes on {describe(fs)} for {what}: {inodes} files needed ({basis}), "
            f"{fs['free_inodes']} free; free some there or restore elsewhere; nothing was changed"
        )
    return {"filesystem": fs["mount"], "type": fs["type"], "free": fs["free"], "needed": need}


def said(text, noise=(), limit=3):
    """The lines of a tool's error output that say what went wrong, joined on one line.

    Lines in ``noise`` (a tool's closing summary) are left out; at most ``limit`` distinct lines are
    kept, and how many more there were is counted.
    """
    lines = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not any(marker in line for marker in noise) and line not in lines:
            lines.append(line)
    kept = "; ".join(lines[:limit])
    return kept + (f" (and {len(lines) - limit} more lines)" if len(lines) > limit else "")


def disk_full(fs, what, need, said_text, undone="the target is untouched"):
    """The message for a restore that ran out of space on ``fs`` (its state before the restore began; None: unknown)."""
    needed = f"{human(need)} needed" if need else "more space needed than there was"
    if fs is None:
        where, free = "the database server's disk", ""
    else:
        where, free = describe(fs), f", {human(fs['free'])} were free when it began"
    return (
        f"{where} is full: {what} ran out of space ({needed}{free}): {said_text}; {undone}; "
        "free space there and restore again"
    )
