# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route 53 failover engine: point a record at the secondary target and wait until it is INSYNC."""

from __future__ import annotations

import time


class Route53Switch:
    """Point a DNS record at the secondary target (UPSERT), waiting until Route 53 reports INSYNC."""

    def __init__(self, client, zone_id, record_name, record_type, value, ttl=30, waiter_delay=2):
        self.client = client
        self.zone_id = zone_id
        self.name = record_name if record_name.endswith(".") else record_name + "."
        self.type = record_type
        self.value = value
        self.ttl = ttl
        self.waiter_delay = waiter_delay

    def current(self):
        records = self.client.list_resource_record_sets(
            HostedZoneId=self.zone_id, StartRecordName=self.name, StartRecordType=self.type, MaxItems="1"
        )["ResourceRecordSets"]
        for record in records:
            if record["Name"] == self.name and record["Type"] == self.type:
                return [item["Value"] for item in record.get("ResourceRecords", [])]
        return []

    def switch(self, check_mode=False):
        before = self.current()
        diff = {"before": {"name": self.name, "values": before}, "after": {"name": self.name, "values": [self.value]}}
        if before == [self.value]:
            return {"changed": False, "diff": diff, "msg": f"{self.name} {self.type} already points at {self.value}"}
        if check_mode:
            return {"changed": True, "diff": diff, "msg": f"would point {self.name} {self.type} at {self.value}"}
        started = time.monotonic()
        change = self.client.change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={
                "Comment": "mttr.recovery failover",
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": self.name,
                            "Type": self.type,
                            "TTL": self.ttl,
                            "ResourceRecords": [{"Value": self.value}],
                        },
                    }
                ],
            },
        )["ChangeInfo"]
        self.client.get_waiter("resource_record_sets_changed").wait(
            Id=change["Id"], WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": 60}
        )
        return {
            "changed": True,
            "diff": diff,
            "change_id": change["Id"],
            "timings": {"insync_s": round(time.monotonic() - started, 4)},
            "msg": f"{self.name} {self.type} now points at {self.value} (was {', '.join(before) or 'absent'})",
        }
