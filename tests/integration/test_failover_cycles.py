"""Acknowledged writes across failover cycles: primary-down -> failover -> rejoin, alternating nodes.

A writer inserts through HAProxy the whole time; after each cycle every acknowledged row must be on the
current primary and the other node must stream from it (see mttr.lab.cycles). With synchronous
replication no acknowledged write may be lost; with asynchronous replication the figure is reported,
and the failover's own exposure report must never claim "no data lost" for a cycle that lost some.
"""

from __future__ import annotations

import pytest

from conftest import LAB_INVENTORY, started_lab, stop_lab
from mttr.lab.cycles import run_cycles

pytestmark = pytest.mark.integration

CYCLES = 3


@pytest.mark.parametrize("replication", ["sync", "async"])
def test_no_acknowledged_write_is_lost_over_failover_cycles(replication, tmp_path, record_property):
    handle = started_lab(replication=replication)
    try:
        records = run_cycles(handle.home, LAB_INVENTORY, tmp_path / "runner", CYCLES)
    finally:
        stop_lab(handle)
    for record in records:
        record_property(
            "figure",
            f"[{replication}] cycle {record['cycle']}: killed {record['killed']}, promoted {record['promoted']}, "
            f"{record['acknowledged']} writes acknowledged so far, {record['lost']} lost in this cycle, exposure "
            f"{record['exposure']['unreceived_bytes']} B ({record['exposure']['replication']})",
        )
    assert [record["killed"] for record in records] == ["pg1", "pg2", "pg1"]
    for record in records:
        assert record["replication"]["receiver"][0] == "streaming"
        exposure = record["exposure"]
        if exposure["acknowledged_writes_at_risk"] is False:
            assert record["lost"] == 0, f"the failover said nothing could be lost, yet {record}"
    if replication == "sync":
        assert all(record["exposure"]["replication"] == "synchronous" for record in records)
        assert all(record["replication"]["sync_state"] == "sync" for record in records)
        assert sum(record["lost"] for record in records) == 0, records
