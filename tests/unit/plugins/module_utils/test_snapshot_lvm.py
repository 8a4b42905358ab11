"""The ``lvm`` provider: its command plans, its availability check and its reading of ``lvs`` output.

Why the real LVM path does not run here: this machine has loop devices and the lvm2 tools, but its kernel has
no device-mapper driver (``dmsetup version`` prints a library version and no "Driver version" line, and
``lvcreate`` fails). Without device-mapper no logical volume can be activated, so no snapshot can be taken or
merged. The tests therefore check what can be checked honestly:

- the argv lists the provider plans for ``lvcreate -s`` / ``lvconvert --merge`` / ``lvremove``, exactly;
- that ``check_available()``, run with a real subprocess runner, refuses with the explicit device-mapper message
  (this is the machine's reality, asserted, not skipped), and that take/rollback/delete stop there;
- that ``list()`` parses the JSON shape ``lvs --reportformat json`` prints, fed by a real ``printf`` process,
  and reports a real ``lvs`` failure (a volume group that does not exist) as a SnapshotError.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_common import SnapshotError
from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_lvm import LvmProvider
from ansible_collections.mttr.recovery.tests.support.processes import run_process
from ansible_collections.mttr.recovery.tests.support.snapshots import printf_runner

NO_DM = "device-mapper is not available in this kernel"


def lvs_json(rows):
    """What ``lvs --reportformat json --options lv_name,origin,lv_time <vg>`` prints (lvm2 2.03 layout)."""
    return json.dumps({"report": [{"lv": rows}]}, indent=2)


# ----------------------------------------------------------------------------- plans


def test_plan_take():
    lvm = LvmProvider("vg0", "data", run_process, size="2G")
    assert lvm.plan_take("data_snap_1") == [
        ["lvcreate", "--snapshot", "--name", "data_snap_1", "--size", "2G", "vg0/data"]
    ]


def test_plan_take_default_size():
    assert LvmProvider("vg0", "data", run_process).plan_take("s") == [
        ["lvcreate", "--snapshot", "--name", "s", "--size", "1G", "vg0/data"]
    ]


def test_plan_rollback_with_mountpoint():
    lvm = LvmProvider("vg0", "data", run_process, size="512M", mountpoint="/srv/data")
    assert lvm.plan_rollback("data_snap_1", "data_pre_rollback_20261123120000") == [
        ["lvcreate", "--snapshot", "--name", "data_pre_rollback_20261123120000", "--size", "512M", "vg0/data"],
        ["umount", "/srv/data"],
        ["lvconvert", "--merge", "vg0/data_snap_1"],
        ["lvchange", "--activate", "n", "vg0/data"],
        ["lvchange", "--activate", "y", "vg0/data"],
        ["mount", "/dev/vg0/data", "/srv/data"],
    ]


def test_plan_rollback_without_mountpoint():
    lvm = LvmProvider("vg0", "data", run_process)
    assert lvm.plan_rollback("data_snap_1", "keep") == [
        ["lvcreate", "--snapshot", "--name", "keep", "--size", "1G", "vg0/data"],
        ["lvconvert", "--merge", "vg0/data_snap_1"],
        ["lvchange", "--activate", "n", "vg0/data"],
        ["lvchange", "--activate", "y", "vg0/data"],
    ]


def test_plan_delete():
    assert LvmProvider("vg0", "data", run_process).plan_delete("data_snap_1") == [
        ["lvremove", "--yes", "vg0/data_snap_1"]
    ]


# ----------------------------------------------------------------------------- this machine: no device-mapper


def test_check_available_refuses_without_device_mapper():
    out = run_process(["dmsetup", "version"], None)[1]
    assert "Driver version" not in out, "this machine gained a device-mapper driver: extend these tests"
    with pytest.raises(SnapshotError) as info:
        LvmProvider("vg0", "data", run_process).check_available()
    message = str(info.value)
    assert message.startswith(f"{NO_DM} ('dmsetup version' shows no driver)")
    assert message.endswith("LVM snapshots cannot be taken or merged on this machine")


@pytest.mark.parametrize(
    "operation",
    [
        lambda lvm: lvm.take("s1"),
        lambda lvm: lvm.take("s1", check_mode=True),
        lambda lvm: lvm.rollback("latest"),
        lambda lvm: lvm.rollback("latest", check_mode=True),
        lambda lvm: lvm.delete("s1"),
    ],
    ids=["take", "take-check", "rollback", "rollback-check", "delete"],
)
def test_operations_stop_at_the_availability_check(operation):
    calls = []

    def run(argv, env):
        calls.append(argv[0])
        return run_process(argv, env)

    with pytest.raises(SnapshotError, match=NO_DM):
        operation(LvmProvider("mttr_test_vg", "data", run))
    assert calls == ["dmsetup"]  # nothing else was attempted


# ----------------------------------------------------------------------------- lvs output


def test_list_parses_lvs_json():
    rows = [
        {"lv_name": "data", "origin": "", "lv_time": "2026-11-20 09:00:00 +0000"},
        {"lv_name": "data_snap_b", "origin": "data", "lv_time": "2026-11-23 08:00:00 +0000"},
        {"lv_name": "logs", "origin": "", "lv_time": "2026-11-20 09:00:00 +0000"},
        {"lv_name": "logs_snap", "origin": "logs", "lv_time": "2026-11-22 08:00:00 +0000"},
        {"lv_name": "data_snap_a", "origin": "data", "lv_time": "2026-11-21 08:00:00 +0000"},
    ]
    calls = []
    lvm = LvmProvider("vg0", "data", printf_runner(lvs_json(rows), calls))
    assert lvm.list() == [
        {"id": "data_snap_a", "created": "2026-11-21 08:00:00 +0000"},
        {"id": "data_snap_b", "created": "2026-11-23 08:00:00 +0000"},
    ]
    assert calls == [
        (
            ["lvs", "--reportformat", "json", "--options", "lv_name,origin,lv_time", "vg0"],
            {"LVM_SUPPRESS_FD_WARNINGS": "1"},
        )
    ]


def test_list_of_empty_volume_group():
    assert LvmProvider("vg0", "data", printf_runner(lvs_json([]))).list() == []


@pytest.mark.parametrize("text", ["", "not json", '{"report": []}', '{"other": 1}'])
def test_list_unreadable_output(text):
    with pytest.raises(SnapshotError, match="cannot read the output of lvs for volume group vg0"):
        LvmProvider("vg0", "data", printf_runner(text)).list()


def test_list_with_real_lvs_of_missing_volume_group():
    """Real ``lvs`` runs here (it needs no driver to read metadata); a missing VG fails with its own message."""
    with pytest.raises(SnapshotError) as info:
        LvmProvider("mttr_no_such_vg", "data", run_process).list()
    message = str(info.value)
    assert message.startswith(
        "listing logical volumes failed (lvs --reportformat json --options lv_name,origin,lv_time mttr_no_such_vg)"
    )
    assert "mttr_no_such_vg" in message.split("): ", 1)[1]
