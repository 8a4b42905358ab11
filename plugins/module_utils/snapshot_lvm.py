# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``lvm`` snapshot provider: ``lvcreate -s`` and ``lvconvert --merge``, mount handled.

Before merging a snapshot back, the provider snapshots the origin's current state
(``<lv>_pre_rollback_<time>``) so the rollback can itself be undone. The merge of an open origin
is deferred by LVM until the next activation, so the origin is unmounted, deactivated and
activated again, then remounted. Commands are planned as argv lists (unit-tested) and run through
an injected ``run(argv, env) -> (rc, out, err)``.
"""

from __future__ import annotations

import datetime
import json

from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_common import SnapshotError


class LvmProvider:
    kind = "lvm"

    def __init__(self, vg, lv, run, size="1G", mountpoint=None):
        self.vg = vg
        self.lv = lv
        self.run = run
        self.size = size
        self.mountpoint = mountpoint

    def _run(self, argv, what):
        rc, out, err = self.run(argv, {"LVM_SUPPRESS_FD_WARNINGS": "1"})
        if rc != 0:
            tail = (err or out).strip().splitlines()
            raise SnapshotError(f"{what} failed ({' '.join(argv)}): {tail[-1] if tail else f'rc {rc}'}")
        return out

    def check_available(self):
        rc, out, _stderr = self.run(["dmsetup", "version"], None)
        if rc != 0 or "Driver version" not in out:
            raise SnapshotError(
                "device-mapper is not available in this kernel ('dmsetup version' shows no driver): LVM snapshots "
                "cannot be taken or merged on this machine"
            )

    # ------------------------------------------------------------------ plans
    def plan_take(self, name):
        return [["lvcreate", "--snapshot", "--name", name, "--size", self.size, f"{self.vg}/{self.lv}"]]

    def plan_rollback(self, snapshot, keep_name):
        origin = f"{self.vg}/{self.lv}"
        plan = self.plan_take(keep_name)
        if self.mountpoint:
            plan.append(["umount", self.mountpoint])
        plan += [
            ["lvconvert", "--merge", f"{self.vg}/{snapshot}"],
            ["lvchange", "--activate", "n", origin],
            ["lvchange", "--activate", "y", origin],
        ]
        if self.mountpoint:
            plan.append(["mount", f"/dev/{self.vg}/{self.lv}", self.mountpoint])
        return plan

    def plan_delete(self, snapshot):
        return [["lvremove", "--yes", f"{self.vg}/{snapshot}"]]

    # ------------------------------------------------------------------ operations
    def list(self):
        out = self._run(
            ["lvs", "--reportformat", "json", "--options", "lv_name,origin,lv_time", self.vg], "listing logical volumes"
        )
        try:
            rows = json.loads(out)["report"][0]["lv"]
        except (ValueError, KeyError, IndexError):
            raise SnapshotError(f"cannot read the output of lvs for volume group {self.vg}") from None
        snapshots = [r for r in rows if r.get("origin") == self.lv]
        snapshots.sort(key=lambda r: r.get("lv_time", ""))
        return [{"id": r["lv_name"], "created": r.get("lv_time")} for r in snapshots]

    def take(self, name=None, check_mode=False):
        self.check_available()
        name = name or f"{self.lv}_snap_{_stamp()}"
        if name in [s["id"] for s in self.list()]:
            return {"changed": False, "snapshot": {"id": name}, "msg": f"snapshot {name} exists"}
        if not check_mode:
            for argv in self.plan_take(name):
                self._run(argv, "taking the snapshot")
        return {"changed": True, "snapshot": {"id": name}, "msg": f"snapshot {self.vg}/{name} of {self.lv}"}

    def delete(self, snapshot, check_mode=False):
        self.check_available()
        if snapshot not in [s["id"] for s in self.list()]:
            return {"changed": False, "msg": f"snapshot {snapshot} does not exist"}
        if not check_mode:
            for argv in self.plan_delete(snapshot):
                self._run(argv, "deleting the snapshot")
        return {"changed": True, "msg": f"deleted snapshot {self.vg}/{snapshot}"}

    def rollback(self, to="latest", latest_before=None, check_mode=False):
        self.check_available()
        snapshots = [s for s in self.list() if "_pre_rollback_" not in s["id"]]
        if latest_before:
            snapshots = [s for s in snapshots if (s["created"] or "") < str(latest_before)]
        if to in (None, "latest", "previous"):
            if not snapshots:
                raise SnapshotError(f"no snapshot of {self.vg}/{self.lv} to roll back to")
            snapshot = snapshots[-1]["id"]
        elif to in [s["id"] for s in snapshots]:
            snapshot = to
        else:
            raise SnapshotError(f"snapshot {to} of {self.vg}/{self.lv} not found")
        keep = f"{self.lv}_pre_rollback_{_stamp()}"
        plan = self.plan_rollback(snapshot, keep)
        diff = {"before": {"origin": f"{self.vg}/{self.lv}", "state": "current"}, "after": {"snapshot": snapshot}}
        if check_mode:
            return {
                "changed": True,
                "snapshot_id": snapshot,
                "plan": [" ".join(a) for a in plan],
                "diff": diff,
                "msg": f"would merge {snapshot} into {self.vg}/{self.lv}, keeping the current state as {keep}",
            }
        for argv in plan:
            self._run(argv, f"rolling {self.vg}/{self.lv} back to {snapshot}")
        return {
            "changed": True,
            "snapshot_id": snapshot,
            "replaced": keep,
            "plan": [" ".join(a) for a in plan],
            "diff": diff,
            "msg": f"merged {snapshot} into {self.vg}/{self.lv}; the state before is kept as {keep}",
        }


def _stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
