"""The replication facts engine: LSNs, synchronous settings, and the end of a crashed node's WAL."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.pg_replication import (
    _RECORD,
    acknowledged_writes_safe,
    configured_setting,
    end_pointer,
    lsn_int,
    lsn_text,
    parse_sync_names,
    record_end,
    same_endpoint,
    segment_start,
    wal_end,
)
from ansible_collections.mttr.recovery.tests.support.postgres import PostgresServer, pg_bin
from ansible_collections.mttr.recovery.tests.support.processes import run_process


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/3036D80", 0x3036D80), ("1/0", 1 << 32), ("A/FFFFFFFF", (10 << 32) + 0xFFFFFFFF)],
)
def test_lsn_round_trip(text, value):
    assert lsn_int(text) == value
    assert lsn_text(value) == text


def test_lsn_of_nothing_is_none():
    assert lsn_int(None) is None and lsn_int("") is None and lsn_text(None) is None


def test_segment_start():
    assert segment_start("000000010000000000000005") == 5 * 16 * 1024 * 1024
    assert segment_start("000000020000000100000002", 64 * 1024 * 1024) == (1 << 32) + 2 * 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("", (0, [])),
        ("  ", (0, [])),
        ("*", (1, ["*"])),
        ("pg1, pg2", (1, ["pg1", "pg2"])),
        ("FIRST 2 (pg1, pg2, pg3)", (2, ["pg1", "pg2", "pg3"])),
        ('ANY 1 ("Pg-1", pg2)', (1, ["Pg-1", "pg2"])),
        ("2 (a,b)", (2, ["a", "b"])),
    ],
)
def test_parse_sync_names(value, parsed):
    assert parse_sync_names(value) == parsed


@pytest.mark.parametrize(
    ("names", "commit", "candidate", "standbys", "safe"),
    [
        ("*", "on", {"pg2"}, 1, True),  # the only standby must confirm every commit
        ("*", "on", {"pg2"}, 2, False),  # either of two may have confirmed it
        ("ANY 2 (*)", "on", {"pg2"}, 2, True),
        ("pg2", "remote_apply", {"pg2"}, 3, True),  # only pg2 is named
        ("pg3", "on", {"pg2"}, 2, False),  # the candidate is not a synchronous standby
        ("FIRST 1 (pg2, pg3)", "on", {"pg2"}, 2, False),  # pg3 may have confirmed instead
        ("FIRST 2 (pg2, pg3)", "on", {"lab-pg2", "pg2"}, 2, True),
        ("*", "local", {"pg2"}, 1, False),  # commits do not wait for the standby
        ("*", "off", {"pg2"}, 1, False),
        ("", "on", {"pg2"}, 1, False),  # asynchronous
    ],
)
def test_acknowledged_writes_safe(names, commit, candidate, standbys, safe):
    assert acknowledged_writes_safe(names, commit, candidate, standbys) is safe


def test_same_endpoint():
    assert same_endpoint(("127.0.0.1", 5432), ("127.0.0.1", "5432"))
    assert same_endpoint(("localhost", 5432), ("127.0.0.1", 5432))
    assert not same_endpoint(("127.0.0.1", 5432), ("127.0.0.1", 5433))
    assert not same_endpoint((None, None), ("127.0.0.1", 5432))


@pytest.fixture
def crashable():
    server = PostgresServer(prefix="mttr-test-wal-")
    yield server
    server.stop()


def crash(server):
    server.tool("pg_ctl", "-D", server.data, "-m", "immediate", "-w", "stop")


def as_postgres(argv, env):
    return run_process(["runuser", "-u", "postgres", "--", *argv], env)


@pytest.mark.integration
def test_wal_end_of_a_crashed_node_is_where_it_stopped_writing(crashable):
    with crashable.connect() as conn:
        conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 50000) AS g")
        conn.execute("INSERT INTO t VALUES (1)")
        written = lsn_int(conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])
    crash(crashable)
    assert wal_end(str(crashable.data), as_postgres, str(crashable.bin)) == written


@pytest.mark.integration
def test_wal_end_after_a_segment_switch(crashable):
    with crashable.connect() as conn:
        conn.execute("CREATE TABLE t (g int)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("SELECT pg_switch_wal()")
        written = lsn_int(conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])
    crash(crashable)
    end = wal_end(str(crashable.data), as_postgres, str(crashable.bin))
    # after a switch the insert position is the next segment's first record (past its page header)
    assert end is not None and written - 40 <= end <= written


def test_wal_end_of_no_data_directory_is_unknown(tmp_path):
    assert wal_end(str(tmp_path / "missing"), run_process, str(pg_bin())) is None


@pytest.mark.integration
def test_configured_setting_reads_the_configuration_files(crashable):
    with crashable.connect() as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (pg2)'")
    crash(crashable)
    assert configured_setting(str(crashable.data), "synchronous_standby_names", as_postgres, str(crashable.bin)) == (
        "FIRST 1 (pg2)"
    )
    assert configured_setting(str(crashable.data), "no_such_setting", as_postgres, str(crashable.bin)) is None


@pytest.mark.parametrize(
    ("start", "length", "end"),
    [
        ("0/3036D58", 34, "0/3036D80"),  # a commit record, as pg_waldump showed it
        ("0/3015F00", 256, "0/3016000"),  # ends exactly at a page boundary
        ("0/3015FF0", 40, "0/3016030"),  # crosses into the next page: 16 + 24 header + 24
        ("0/3FFFFF0", 40, "0/4000040"),  # crosses into a new segment: 16 + 40 header + 24
    ],
)
def test_record_end(start, length, end):
    assert lsn_text(record_end(lsn_int(start), length)) == end


@pytest.mark.parametrize(
    ("start", "end"),
    [("0/3016018", "0/3016000"), ("0/4000028", "0/4000000"), ("0/3036D80", "0/3036D80"), ("0/4000018", "0/4000018")],
)
def test_end_pointer(start, end):
    assert lsn_text(end_pointer(lsn_int(start))) == end


@pytest.mark.integration
def test_wal_end_of_a_record_cut_off_by_a_page_never_written(crashable):
    """A torn write: a record crosses into a page the crash never wrote. The WAL ends where it starts."""
    with crashable.connect() as conn:
        conn.execute("CREATE TABLE t (g text)")
        checkpoint = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        for _row in range(40):
            conn.execute("INSERT INTO t VALUES (repeat(md5(random()::text), 40))")
    crash(crashable)
    dump = subprocess.run(
        [str(crashable.bin / "pg_waldump"), "--path", str(crashable.data / "pg_wal"), "--start", checkpoint],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    records = [(lsn_int(lsn), int(total)) for total, lsn in _RECORD.findall(dump)]
    crossing = [(lsn, total) for lsn, total in records if lsn % 8192 + total > 8192 and lsn % 8192]
    assert crossing, "no record crosses a page: write more rows"
    torn, _total = crossing[-1]
    segment_size = 16 * 1024 * 1024
    wal = crashable.data / "pg_wal" / f"00000001{torn >> 32:08X}{(torn & 0xFFFFFFFF) // segment_size:08X}"
    with open(wal, "r+b") as handle:
        handle.seek((torn // 8192 + 1) * 8192 % segment_size)
        handle.write(b"\0" * 8192)
    assert wal_end(str(crashable.data), as_postgres, str(crashable.bin)) == torn
