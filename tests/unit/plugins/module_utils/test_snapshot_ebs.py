"""The ``ebs`` provider through real boto3 (clients, waiters) against a moto EC2 server subprocess over HTTP."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_common import SnapshotError
from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_ebs import TAG, EbsProvider
from ansible_collections.mttr.recovery.tests.support.moto import MotoServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto():
    server = MotoServer("ec2")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(moto):
    moto.reset()


@pytest.fixture
def instance(moto):
    """A running instance: ``(instance_id, root device)``."""
    return moto.launch()


def provider(moto, instance_id, device):
    return EbsProvider(moto.new_client(), instance_id, device, waiter_delay=0, waiter_attempts=5)


def tags(snapshot):
    return {tag["Key"]: tag["Value"] for tag in snapshot.get("Tags", [])}


# ----------------------------------------------------------------------------- take / list / delete


def test_take_completes_and_tags(moto, instance):
    instance_id, device = instance
    volume_id = moto.attached(instance_id, device)
    result = provider(moto, instance_id, device).take("before-migration-42")
    assert result["changed"] is True
    snapshot_id = result["snapshot"]["id"]
    assert result["snapshot"] == {"id": snapshot_id, "volume_id": volume_id}
    assert result["msg"] == f"snapshot {snapshot_id} of volume {volume_id} completed"
    stored = moto.client.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    assert stored["State"] == "completed"
    assert stored["VolumeId"] == volume_id
    assert stored["Description"] == "before-migration-42"
    assert tags(stored) == {TAG: f"{instance_id}:{device}", "Name": "before-migration-42"}


def test_take_default_name(moto, instance):
    instance_id, device = instance
    snapshot_id = provider(moto, instance_id, device).take()["snapshot"]["id"]
    stored = moto.client.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    assert stored["Description"] == f"mttr snapshot of {instance_id} {device}"
    assert tags(stored)["Name"] == f"mttr-{instance_id}"


def test_take_in_check_mode_creates_nothing(moto, instance):
    instance_id, device = instance
    volume_id = moto.attached(instance_id, device)
    result = provider(moto, instance_id, device).take("x", check_mode=True)
    assert result["changed"] is True and result["snapshot"] == {"volume_id": volume_id}
    assert moto.client.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Snapshots"] == []


def test_list_only_this_instance_and_device_oldest_first(moto, instance):
    instance_id, device = instance
    other_id, other_device = moto.launch()
    ebs = provider(moto, instance_id, device)
    first = ebs.take("one")["snapshot"]["id"]
    provider(moto, other_id, other_device).take("other instance")
    moto.client.create_snapshot(VolumeId=moto.attached(instance_id, device), Description="untagged, by hand")
    second = ebs.take("two")["snapshot"]["id"]
    listed = ebs.list()
    assert [s["id"] for s in listed] == [first, second]
    assert [s["description"] for s in listed] == ["one", "two"]
    assert {s["state"] for s in listed} == {"completed"}
    assert {s["volume_id"] for s in listed} == {moto.attached(instance_id, device)}
    assert all(s["created"].endswith("+00:00") for s in listed)


def test_delete(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    snapshot_id = ebs.take("one")["snapshot"]["id"]
    assert ebs.delete(snapshot_id, check_mode=True)["changed"] is True
    assert [s["id"] for s in ebs.list()] == [snapshot_id]
    assert ebs.delete(snapshot_id) == {"changed": True, "msg": f"deleted snapshot {snapshot_id}"}
    assert ebs.list() == []
    assert ebs.delete(snapshot_id)["changed"] is False


def test_no_volume_at_device(moto, instance):
    instance_id, _device = instance
    with pytest.raises(SnapshotError, match=f"instance {instance_id} has no EBS volume at /dev/xvdz"):
        provider(moto, instance_id, "/dev/xvdz").take()


# ----------------------------------------------------------------------------- rollback


def test_rollback_to_latest_with_the_instance_running(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    original = moto.attached(instance_id, device)
    ebs.take("one")
    latest = ebs.take("two")["snapshot"]["id"]
    public_ip = moto.describe(instance_id)["PublicIpAddress"]

    result = ebs.rollback("latest")

    assert result["changed"] is True and result["restarted"] is True
    assert result["snapshot_id"] == latest and result["replaced"] == original
    new_volume = moto.volume(result["current"])
    assert new_volume["SnapshotId"] == latest and new_volume["State"] == "in-use"
    assert new_volume["AvailabilityZone"] == moto.volume(original)["AvailabilityZone"]
    assert tags(new_volume) == {"mttr:restored-from": latest}
    assert moto.attached(instance_id, device) == result["current"]
    kept = moto.volume(original)  # detached and kept, not deleted
    assert kept["State"] == "available" and kept["Attachments"] == []
    described = moto.describe(instance_id)
    assert described["State"]["Name"] == "running"
    assert described["PublicIpAddress"] != public_ip  # a stop and a start happened (the public IP changes)
    assert result["diff"] == {
        "before": {"volume_id": original, "snapshot_id": None},
        "after": {"snapshot_id": latest},
    }


def test_rollback_to_snapshot_id(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    first = ebs.take("one")["snapshot"]["id"]
    ebs.take("two")
    result = ebs.rollback(first)
    assert result["changed"] is True and result["snapshot_id"] == first
    assert moto.volume(moto.attached(instance_id, device))["SnapshotId"] == first


def test_rollback_to_latest_before(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    first = ebs.take("one")["snapshot"]["id"]
    time.sleep(1.1)  # moto stamps snapshots to the second
    ebs.take("two")
    second_created = ebs.list()[1]["created"]
    result = ebs.rollback("latest", latest_before=second_created.replace("+00:00", "Z"))
    assert result["snapshot_id"] == first
    assert moto.volume(moto.attached(instance_id, device))["SnapshotId"] == first
    with pytest.raises(SnapshotError, match=f"no completed snapshot of {instance_id} {device} before 2000-01-01"):
        ebs.rollback("latest", latest_before="2000-01-01T00:00:00Z")
    with pytest.raises(SnapshotError, match="cannot read 'yesterday' as a time: use ISO 8601"):
        ebs.rollback("latest", latest_before="yesterday")


def test_rollback_with_the_instance_stopped_leaves_it_stopped(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    snapshot_id = ebs.take("one")["snapshot"]["id"]
    moto.client.stop_instances(InstanceIds=[instance_id])
    original = moto.attached(instance_id, device)
    result = ebs.rollback("latest")
    assert result["changed"] is True and result["restarted"] is False
    assert moto.describe(instance_id)["State"]["Name"] == "stopped"
    assert moto.volume(moto.attached(instance_id, device))["SnapshotId"] == snapshot_id
    assert moto.volume(original)["State"] == "available"


def test_second_rollback_is_no_change(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    snapshot_id = ebs.take("one")["snapshot"]["id"]
    first = ebs.rollback("latest")
    volumes = moto.volume_ids()
    again = ebs.rollback("latest")
    assert again["changed"] is False
    assert again["current"] == first["current"] and again["snapshot_id"] == snapshot_id
    assert again["msg"] == f"volume {first['current']} at {device} already comes from {snapshot_id}"
    assert moto.volume_ids() == volumes
    assert moto.attached(instance_id, device) == first["current"]


def test_check_mode_changes_nothing(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    snapshot_id = ebs.take("one")["snapshot"]["id"]
    original = moto.attached(instance_id, device)
    volumes = moto.volume_ids()
    public_ip = moto.describe(instance_id)["PublicIpAddress"]
    result = ebs.rollback("latest", check_mode=True)
    assert result["changed"] is True and result["snapshot_id"] == snapshot_id
    assert result["diff"]["before"]["volume_id"] == original
    assert moto.attached(instance_id, device) == original
    assert moto.volume_ids() == volumes
    described = moto.describe(instance_id)
    assert described["State"]["Name"] == "running" and described["PublicIpAddress"] == public_ip


def test_rollback_of_a_data_volume(moto, instance):
    """A volume created and attached at /dev/xvdf; the root volume is left alone."""
    instance_id, root = instance
    zone = moto.describe(instance_id)["Placement"]["AvailabilityZone"]
    data = moto.client.create_volume(AvailabilityZone=zone, Size=10, VolumeType="gp3")["VolumeId"]
    moto.client.attach_volume(VolumeId=data, InstanceId=instance_id, Device="/dev/xvdf")
    root_volume = moto.attached(instance_id, root)
    ebs = provider(moto, instance_id, "/dev/xvdf")
    snapshot_id = ebs.take("data")["snapshot"]["id"]
    result = ebs.rollback("previous")  # for ebs, the same as latest
    assert result["replaced"] == data and result["snapshot_id"] == snapshot_id
    restored = moto.volume(moto.attached(instance_id, "/dev/xvdf"))
    assert restored["SnapshotId"] == snapshot_id and restored["VolumeType"] == "gp3"
    assert moto.attached(instance_id, root) == root_volume


def test_terminated_instance_refused(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    ebs.take("one")
    moto.client.terminate_instances(InstanceIds=[instance_id])
    volumes = moto.volume_ids()
    for check_mode in (False, True):
        with pytest.raises(SnapshotError) as info:
            ebs.rollback("latest", check_mode=check_mode)
        assert str(info.value) == (
            f"instance {instance_id} is terminated: a rollback needs it running or stopped; wait and retry"
        )
    assert moto.volume_ids() == volumes


def test_snapshot_not_found(moto, instance):
    instance_id, device = instance
    ebs = provider(moto, instance_id, device)
    with pytest.raises(SnapshotError, match=f"no completed snapshot of {instance_id} {device}$"):
        ebs.rollback("latest")
    ebs.take("one")
    with pytest.raises(SnapshotError) as info:
        ebs.rollback("snap-0123456789abcdef0")
    assert str(info.value) == (
        f"snapshot snap-0123456789abcdef0 not found among the completed snapshots of {instance_id} {device}"
    )


def test_unknown_instance(moto):
    with pytest.raises(ClientError, match=r"InvalidInstanceID\.NotFound"):
        provider(moto, "i-0123456789abcdef0", "/dev/xvda").rollback("latest")
