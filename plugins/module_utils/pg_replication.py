# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL replication facts, read once for the failover, the rejoin and the probes.

What a promotion can lose is the primary's WAL the candidate never received: WAL a standby has
received but not replayed yet is replayed before promotion finishes, so it is not lost. So the
exposure is measured against the old primary's last known position - live when it answers, the end
of the WAL in its data directory (``pg_controldata`` + ``pg_waldump``) when it does not - and is
unknown otherwise. With synchronous replication and the candidate the standby every commit waited
for, no acknowledged write can be lost whatever the bytes say: what the candidate lacks was never
acknowledged to a client.
"""

from __future__ import annotations

import os
import re
import socket

# pg_waldump stops at the first invalid record; when its header is all zeros, where it would start is the end
_WAL_END = re.compile(r"invalid record length at ([0-9A-F]+/[0-9A-F]+): wanted \d+, got 0")
_LAST_GOOD = re.compile(r"error in WAL record at ([0-9A-F]+/[0-9A-F]+)")
_RECORD = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*\d+, lsn: ([0-9A-F]+/[0-9A-F]+)")
# the WAL reaches the end of the last segment file (after a segment switch, say): it ends where the next begins
_NO_SEGMENT = re.compile(r'could not find file "([0-9A-F]{24})"')
_SYNC = re.compile(r"^\s*(?:(FIRST|ANY)\s+)?(\d+)\s*\((.*)\)\s*$", re.IGNORECASE)
WAL_SEGMENT = 16 * 1024 * 1024
WAL_PAGE = 8192
SHORT_PAGE_HEADER, LONG_PAGE_HEADER = 24, 40

STANDBY_QUERY = (
    "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
    " r.status, r.sender_host, r.sender_port, r.latest_end_lsn::text"
    " FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true"
)


def lsn_int(text):
    """'0/3036D80' -> 50556288; None stays None."""
    if text in (None, ""):
        return None
    high, low = str(text).split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value):
    return None if value is None else f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def standby_facts(conn):
    """A standby's replication facts: what it holds, what it replayed, and whom it streams from."""
    receive, replay, status, sender_host, sender_port, upstream_end = conn.execute(STANDBY_QUERY).fetchone()
    held = max(lsn_int(receive) or 0, lsn_int(replay) or 0)
    return {
        "receive_lsn": receive,
        "replay_lsn": replay,
        # received WAL is replayed before a promotion finishes: the replay gap is not a loss
        "lag_bytes": max(0, (lsn_int(receive) or 0) - (lsn_int(replay) or 0)) if receive and replay else 0,
        "held_lsn": lsn_text(held) if held else None,
        "receiver": status,
        "upstream_host": sender_host,
        "upstream_port": sender_port,
        # the upstream's end of WAL as its last message said (only while a receiver runs)
        "upstream_end_lsn": upstream_end,
    }


def application_names(conn, fallback):
    """The names a standby's WAL receiver may go by in the primary's pg_stat_replication."""
    from psycopg.conninfo import conninfo_to_dict

    names = {fallback}
    conninfo = conn.execute("SHOW primary_conninfo").fetchone()[0]
    try:
        named = conninfo_to_dict(conninfo).get("application_name") if conninfo else None
    except Exception:  # an unparsable conninfo names nothing; the node's own name still counts
        named = None
    if named:
        return {named}
    cluster = conn.execute("SHOW cluster_name").fetchone()[0]
    names.add(cluster or "walreceiver")
    return names


def parse_sync_names(value):
    """``synchronous_standby_names`` -> (how many must confirm, [names]); (0, []) when asynchronous."""
    value = (value or "").strip()
    if not value:
        return 0, []
    match = _SYNC.match(value)
    count, names = (int(match.group(2)), match.group(3)) if match else (1, value)
    return count, [name.strip().strip('"') for name in names.split(",") if name.strip()]


def acknowledged_writes_safe(sync_names, sync_commit, candidate_names, standby_count):
    """True when every commit acknowledged to a client was flushed (or written) on the candidate.

    That holds when commits wait for standbys (``synchronous_commit`` on, remote_write or
    remote_apply), the candidate is among the synchronous names, and every standby that could
    confirm must confirm (the number required is at least the number of standbys named).
    """
    if (sync_commit or "on") not in ("on", "remote_write", "remote_apply"):
        return False
    required, names = parse_sync_names(sync_names)
    if not required:
        return False
    if "*" in names:
        named = standby_count
    else:
        named = len({name.lower() for name in names})
        if not {name.lower() for name in candidate_names} & {name.lower() for name in names}:
            return False
    return required >= named


def _as(argv, os_user):
    if os_user and os.geteuid() == 0:
        return ["runuser", "-u", os_user, "--", *argv]
    return argv


def _tool(pg_bin, name):
    return os.path.join(pg_bin, name) if pg_bin else name


def wal_end(data_dir, run, pg_bin=None, os_user=None):
    """The end of the valid WAL in a stopped (or crashed) node's data directory, as an int LSN.

    Reads the latest checkpoint from ``pg_controldata`` and walks the WAL after it with
    ``pg_waldump`` to the first invalid record. When that record's header is where it fails, the
    error names its start: the end. Otherwise (a record cut off by a page that was never written)
    the last complete record is dumped and its end computed. None when it cannot be told.
    """
    rc, out, _err = run(_as([_tool(pg_bin, "pg_controldata"), "-D", data_dir], os_user), {"LC_ALL": "C"})
    if rc != 0:
        return None
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    checkpoint = fields.get("Latest checkpoint location", "").strip()
    timeline = fields.get("Latest checkpoint's TimeLineID", "").strip()
    if not checkpoint or not timeline.isdigit():
        return None
    segment_size = int(fields.get("Bytes per WAL segment", "").strip() or WAL_SEGMENT)
    page_size = int(fields.get("WAL block size", "").strip() or WAL_PAGE)

    def waldump(start, *options):
        argv = [_tool(pg_bin, "pg_waldump"), *options, "--path", os.path.join(data_dir, "pg_wal")]
        argv += ["--start", start, "--timeline", timeline]
        _rc, out, err = run(_as(argv, os_user), {"LC_ALL": "C"})
        return out or "", err or ""

    _out, err = waldump(checkpoint, "--quiet")
    match = _WAL_END.search(err)
    if match:
        return end_pointer(lsn_int(match.group(1)), page_size, segment_size)
    last_good = _LAST_GOOD.search(err)
    if last_good:
        out, _err = waldump(last_good.group(1))
        records = _RECORD.findall(out)
        if records:
            total, start = records[-1]
            return record_end(lsn_int(start), int(total), page_size, segment_size)
        return None
    match = _NO_SEGMENT.search(err)
    if match:  # after a segment switch the WAL goes on at the next segment, which was never written
        return segment_start(match.group(1), segment_size)
    return None


def end_pointer(position, page_size=WAL_PAGE, segment_size=WAL_SEGMENT):
    """A record start just past a page header, as the end of the WAL before it: the page boundary,
    the way PostgreSQL reports end positions (so it compares with what a standby received)."""
    if position % segment_size == LONG_PAGE_HEADER:
        return position - LONG_PAGE_HEADER
    if position % page_size == SHORT_PAGE_HEADER and position % segment_size != SHORT_PAGE_HEADER:
        return position - SHORT_PAGE_HEADER
    return position


def record_end(start, length, page_size=WAL_PAGE, segment_size=WAL_SEGMENT):
    """Where the WAL ends after a record of ``length`` bytes at ``start``: page headers it crosses are
    skipped (24 bytes, 40 at a segment's first page), records are 8-byte aligned, and an end on a
    page boundary is that boundary."""
    position, remaining = start, length
    while True:
        room = page_size - position % page_size
        if remaining <= room:
            position += remaining
            break
        remaining -= room
        position += room
        position += LONG_PAGE_HEADER if position % segment_size == 0 else SHORT_PAGE_HEADER
    return (position + 7) // 8 * 8


def segment_start(name, segment_size=WAL_SEGMENT):
    """The LSN where WAL segment file ``name`` (timeline, log, segment in hex) begins."""
    return (int(name[8:16], 16) << 32) + int(name[16:24], 16) * segment_size


def configured_setting(data_dir, name, run, pg_bin=None, os_user=None):
    """A setting as a stopped node's configuration files give it (``postgres -C``); None if unknown."""
    rc, out, _err = run(_as([_tool(pg_bin, "postgres"), "-D", data_dir, "-C", name], os_user), {"LC_ALL": "C"})
    return out.strip() if rc == 0 else None


def same_endpoint(seen, wanted):
    """Whether a WAL receiver's (sender_host, sender_port) is ``wanted`` (host names resolved)."""
    if seen[1] is None or int(seen[1]) != int(wanted[1]):
        return False
    if seen[0] == wanted[0]:
        return True
    try:
        return bool(_addresses(seen[0]) & _addresses(wanted[0]))
    except (OSError, TypeError):
        return False


def _addresses(host):
    return {info[4][0] for info in socket.getaddrinfo(host, None)}
