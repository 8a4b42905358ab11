# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``ebs`` snapshot provider: an instance's volume, snapshotted and rolled back through boto3.

Rollback creates a volume from the chosen snapshot in the instance's zone, stops the instance,
detaches the current volume (kept, and returned), attaches the new one at the same device and
starts the instance again if it was running, waiting on boto3's waiters at every step.
"""

from __future__ import annotations

import datetime

from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_common import SnapshotError

TAG = "mttr:snapshot-of"
ROLLBACK_STATES = ("running", "stopped")


def _parse(value):
    text = str(value).strip().replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise SnapshotError(f"cannot read {value!r} as a time: use ISO 8601, e.g. 2026-11-23T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


class EbsProvider:
    kind = "ebs"

    def __init__(self, client, instance_id, device, waiter_delay=2, waiter_attempts=150):
        self.client = client
        self.instance_id = instance_id
        self.device = device
        self.waiter_config = {"Delay": waiter_delay, "MaxAttempts": waiter_attempts}

    def wait(self, name, **kwargs):
        self.client.get_waiter(name).wait(WaiterConfig=self.waiter_config, **kwargs)

    def instance(self):
        reservations = self.client.describe_instances(InstanceIds=[self.instance_id])["Reservations"]
        if not reservations or not reservations[0]["Instances"]:
            raise SnapshotError(f"instance {self.instance_id} not found")
        return reservations[0]["Instances"][0]

    def volume(self, instance=None):
        instance = instance or self.instance()
        for mapping in instance.get("BlockDeviceMappings", []):
            if mapping["DeviceName"] == self.device and "Ebs" in mapping:
                volume_id = mapping["Ebs"]["VolumeId"]
                return self.client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        raise SnapshotError(f"instance {self.instance_id} has no EBS volume at {self.device}")

    def list(self):
        snapshots = self.client.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{TAG}", "Values": [f"{self.instance_id}:{self.device}"]}]
        )["Snapshots"]
        snapshots.sort(key=lambda s: s["StartTime"])
        return [
            {
                "id": s["SnapshotId"],
                "created": s["StartTime"].isoformat(),
                "state": s["State"],
                "volume_id": s["VolumeId"],
                "description": s.get("Description", ""),
            }
            for s in snapshots
        ]

    def take(self, name=None, check_mode=False):
        volume = self.volume()
        if check_mode:
            return {
                "changed": True,
                "snapshot": {"volume_id": volume["VolumeId"]},
                "msg": f"would snapshot volume {volume['VolumeId']} of {self.instance_id}",
            }
        snapshot = self.client.create_snapshot(
            VolumeId=volume["VolumeId"],
            Description=name or f"mttr snapshot of {self.instance_id} {self.device}",
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [
                        {"Key": TAG, "Value": f"{self.instance_id}:{self.device}"},
                        {"Key": "Name", "Value": name or f"mttr-{self.instance_id}"},
                    ],
                }
            ],
        )
        self.wait("snapshot_completed", SnapshotIds=[snapshot["SnapshotId"]])
        return {
            "changed": True,
            "snapshot": {"id": snapshot["SnapshotId"], "volume_id": volume["VolumeId"]},
            "msg": f"snapshot {snapshot['SnapshotId']} of volume {volume['VolumeId']} completed",
        }

    def delete(self, snapshot_id, check_mode=False):
        if snapshot_id not in [s["id"] for s in self.list()]:
            return {"changed": False, "msg": f"snapshot {snapshot_id} is not one of this volume's snapshots"}
        if not check_mode:
            self.client.delete_snapshot(SnapshotId=snapshot_id)
        return {"changed": True, "msg": f"deleted snapshot {snapshot_id}"}

    def resolve(self, to, latest_before=None):
        snapshots = [s for s in self.list() if s["state"] == "completed"]
        if latest_before:
            limit = _parse(latest_before)
            snapshots = [s for s in snapshots if _parse(s["created"]) < limit]
        if to in (None, "latest", "previous"):
            if not snapshots:
                when = f" before {latest_before}" if latest_before else ""
                raise SnapshotError(f"no completed snapshot of {self.instance_id} {self.device}{when}")
            return snapshots[-1]
        for snapshot in snapshots:
            if snapshot["id"] == to:
                return snapshot
        raise SnapshotError(
            f"snapshot {to} not found among the completed snapshots of {self.instance_id} {self.device}"
        )

    def rollback(self, to="latest", latest_before=None, check_mode=False):
        instance = self.instance()
        state = instance["State"]["Name"]
        if state not in ROLLBACK_STATES:
            raise SnapshotError(
                f"instance {self.instance_id} is {state}: a rollback needs it running or stopped; wait and retry"
            )
        volume = self.volume(instance)
        snapshot = self.resolve(to, latest_before)
        diff = {
            "before": {"volume_id": volume["VolumeId"], "snapshot_id": volume.get("SnapshotId") or None},
            "after": {"snapshot_id": snapshot["id"]},
        }
        if volume.get("SnapshotId") == snapshot["id"]:
            return {
                "changed": False,
                "current": volume["VolumeId"],
                "snapshot_id": snapshot["id"],
                "diff": diff,
                "msg": f"volume {volume['VolumeId']} at {self.device} already comes from {snapshot['id']}",
            }
        if check_mode:
            return {
                "changed": True,
                "snapshot_id": snapshot["id"],
                "diff": diff,
                "msg": f"would replace volume {volume['VolumeId']} at {self.device} of {self.instance_id} with a "
                f"new volume from {snapshot['id']} (stopping the instance meanwhile)",
            }
        created = self.client.create_volume(
            SnapshotId=snapshot["id"],
            AvailabilityZone=volume["AvailabilityZone"],
            VolumeType=volume["VolumeType"],
            TagSpecifications=[
                {"ResourceType": "volume", "Tags": [{"Key": "mttr:restored-from", "Value": snapshot["id"]}]}
            ],
        )
        self.wait("volume_available", VolumeIds=[created["VolumeId"]])
        was_running = state == "running"
        if was_running:
            self.client.stop_instances(InstanceIds=[self.instance_id])
            self.wait("instance_stopped", InstanceIds=[self.instance_id])
        self.client.detach_volume(VolumeId=volume["VolumeId"], InstanceId=self.instance_id, Device=self.device)
        self.wait("volume_available", VolumeIds=[volume["VolumeId"]])
        self.client.attach_volume(VolumeId=created["VolumeId"], InstanceId=self.instance_id, Device=self.device)
        self.wait("volume_in_use", VolumeIds=[created["VolumeId"]])
        if was_running:
            self.client.start_instances(InstanceIds=[self.instance_id])
            self.wait("instance_running", InstanceIds=[self.instance_id])
        return {
            "changed": True,
            "snapshot_id": snapshot["id"],
            "current": created["VolumeId"],
            "replaced": volume["VolumeId"],
            "diff": diff,
            "restarted": was_running,
            "msg": f"attached volume {created['VolumeId']} (from {snapshot['id']}) at {self.device} of "
            f"{self.instance_id}; the previous volume {volume['VolumeId']} is detached and kept",
        }
