"""The Route 53 failover switch through real boto3 against a moto server over HTTP."""

from __future__ import annotations

import uuid

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.failover_route53 import Route53Switch
from ansible_collections.mttr.recovery.tests.support.moto import MotoServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto():
    server = MotoServer("route53")
    yield server
    server.stop()


@pytest.fixture
def zone(moto):
    client = moto.client
    name = f"{uuid.uuid4().hex[:8]}.mttr.test."
    zone_id = client.create_hosted_zone(Name=name, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
    client.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": f"db.{name}",
                        "Type": "A",
                        "TTL": 30,
                        "ResourceRecords": [{"Value": "127.0.0.2"}],
                    },
                }
            ]
        },
    )
    return client, zone_id, f"db.{name}"


def test_switch_upserts_and_waits_insync(zone):
    client, zone_id, record = zone
    switch = Route53Switch(client, zone_id, record, "A", "127.0.0.3", waiter_delay=1)
    plan = switch.switch(check_mode=True)
    assert plan["changed"] is True and switch.current() == ["127.0.0.2"]
    result = switch.switch()
    assert result["changed"] is True
    assert result["diff"] == {
        "before": {"name": record, "values": ["127.0.0.2"]},
        "after": {"name": record, "values": ["127.0.0.3"]},
    }
    assert switch.current() == ["127.0.0.3"]
    assert client.get_change(Id=result["change_id"])["ChangeInfo"]["Status"] == "INSYNC"
    assert switch.switch()["changed"] is False


def test_switch_creates_a_missing_record(zone):
    client, zone_id, record = zone
    switch = Route53Switch(client, zone_id, "api." + record.split(".", 1)[1], "A", "127.0.0.4", waiter_delay=1)
    assert switch.current() == []
    assert switch.switch()["changed"] is True
    assert switch.current() == ["127.0.0.4"]
