"""The AWS replace engines (ec2, autoscaling) through real boto3 clients and waiters against a moto server over HTTP."""

from __future__ import annotations

import uuid

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.aws import client
from ansible_collections.mttr.recovery.plugins.module_utils.replace_aws import (
    REPLACES_TAG,
    AutoScalingReplace,
    Ec2Replace,
)
from ansible_collections.mttr.recovery.plugins.module_utils.replace_common import ReplaceError
from ansible_collections.mttr.recovery.tests.support.moto import MotoServer
from ansible_collections.mttr.recovery.tests.support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto():
    server = MotoServer("ec2")
    yield server
    server.stop()


class Estate:
    """A launch template, a target group and (for the autoscaling tests) a group, made through boto3 over HTTP."""

    def __init__(self, moto):
        self.moto = moto
        self.ec2 = moto.ec2
        self.elbv2 = moto.new_client("elbv2")
        self.autoscaling = moto.new_client("autoscaling")
        self.name = f"web-{uuid.uuid4().hex[:8]}"
        self.vpc = self.ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        self.subnet = self.ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        self.template = self.ec2.create_launch_template(
            LaunchTemplateName=self.name, LaunchTemplateData={"ImageId": moto.image_id, "InstanceType": "t3.micro"}
        )["LaunchTemplate"]["LaunchTemplateId"]
        self.target_group = self.elbv2.create_target_group(
            Name=self.name, Protocol="HTTP", Port=80, VpcId=self.vpc, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]

    def launch(self, template=True) -> str:
        kwargs = (
            {"LaunchTemplate": {"LaunchTemplateId": self.template}} if template else {"ImageId": self.moto.image_id}
        )
        instance_id = self.ec2.run_instances(MinCount=1, MaxCount=1, **kwargs)["Instances"][0]["InstanceId"]
        self.elbv2.register_targets(TargetGroupArn=self.target_group, Targets=[{"Id": instance_id}])
        return instance_id

    def group(self, desired=2) -> list[str]:
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=self.name,
            LaunchTemplate={"LaunchTemplateId": self.template},
            MinSize=1,
            MaxSize=desired + 1,
            DesiredCapacity=desired,
            TargetGroupARNs=[self.target_group],
            VPCZoneIdentifier=self.subnet,
        )
        return [i["InstanceId"] for i in self.describe_group()["Instances"]]

    def describe_group(self) -> dict:
        return self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.name])["AutoScalingGroups"][0]

    def targets(self) -> dict[str, str]:
        described = self.elbv2.describe_target_health(TargetGroupArn=self.target_group)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described}

    def state(self, instance_id) -> str:
        return self.moto.describe(instance_id)["State"]["Name"]

    def instances(self) -> set[str]:
        return {i["InstanceId"] for r in self.ec2.describe_instances()["Reservations"] for i in r["Instances"]}


@pytest.fixture
def estate(moto):
    return Estate(moto)


def clients(moto, **extra):
    options = moto.aws_options(**extra)
    return lambda service: client(service, options)


def ec2_engine(moto, estate, instance_id, **kwargs):
    kwargs.setdefault("target_groups", [estate.name])
    return Ec2Replace(clients(moto), instance_id, timeout=10, delay=0, **kwargs)


def asg_engine(moto, instance_id, **kwargs):
    return AutoScalingReplace(clients(moto), instance_id, timeout=kwargs.pop("timeout", 10), delay=0.2, **kwargs)


# ----------------------------------------------------------------------------- ec2


def test_ec2_check_mode_plans_and_changes_nothing(moto, estate):
    dead = estate.launch()
    known = estate.instances()
    result = ec2_engine(moto, estate, dead).replace(check_mode=True)
    assert result["changed"] is True
    assert result["plan"] == {
        "launch": True,
        "register": [estate.target_group],
        "deregister": [estate.target_group],
        "terminate": True,
    }
    assert result["msg"].startswith(f"would replace {dead}: launch an instance from its launch template")
    assert estate.instances() == known and estate.state(dead) == "running"
    assert estate.targets() == {dead: "healthy"}


def test_ec2_dead_instance_is_replaced_then_nothing_changes(moto, estate):
    dead = estate.launch()
    result = ec2_engine(moto, estate, dead).replace()
    new = result["replacement"]
    assert result["changed"] is True and result["launched"] == new and result["terminated"] == dead, result
    assert result["registered"] == [estate.target_group] and result["deregistered"] == [estate.target_group]
    # From EC2 and the target group themselves
    described = moto.describe(new)
    assert described["State"]["Name"] == "running"
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags[REPLACES_TAG] == dead and tags["aws:ec2launchtemplate:id"] == estate.template
    assert estate.targets() == {new: "healthy"}
    assert estate.state(dead) in ("shutting-down", "terminated")
    assert result["diff"]["before"]["targets"] == {estate.target_group: {dead: "healthy"}}
    assert result["diff"]["after"]["targets"] == {estate.target_group: {new: "healthy"}}

    again = ec2_engine(moto, estate, dead).replace()
    assert again["changed"] is False and again["replacement"] == new, again
    assert again["msg"] == f"{dead} is already replaced by {new}"


def test_ec2_finishes_a_half_done_replacement_without_launching_again(moto, estate):
    dead = estate.launch()
    # A replacement launched by an earlier run that stopped before registering it
    new = estate.ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": estate.template},
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": REPLACES_TAG, "Value": dead}]}],
    )["Instances"][0]["InstanceId"]
    result = ec2_engine(moto, estate, dead).replace()
    assert result["changed"] is True and "launched" not in result and result["replacement"] == new
    assert estate.targets() == {new: "healthy"}


def test_ec2_without_a_launch_template_says_so(moto, estate):
    dead = estate.launch(template=False)
    with pytest.raises(ReplaceError, match=r"no launch template to replace .* name one with launch_template") as info:
        ec2_engine(moto, estate, dead).replace()
    assert info.value.changed is False
    result = ec2_engine(moto, estate, dead, launch_template=estate.name).replace()
    assert moto.describe(result["replacement"])["State"]["Name"] == "running"


def test_ec2_unknown_instance_says_so(moto, estate):
    with pytest.raises(ReplaceError, match=r"^instance i-0123456789abcdef0 does not exist \(and no instance"):
        ec2_engine(moto, estate, "i-0123456789abcdef0").replace()


def test_ec2_unknown_target_group_says_so(moto, estate):
    dead = estate.launch()
    with pytest.raises(ReplaceError, match=r"^finding target groups nope: "):
        ec2_engine(moto, estate, dead, target_groups=["nope"]).replace()


def test_unreachable_endpoint_is_one_line(estate):
    options = {
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "region": "us-east-1",
        "access_key": "a",
        "secret_key": "b",
    }
    engine = Ec2Replace(lambda service: client(service, options), "i-0123456789abcdef0", target_groups=["web"])
    with pytest.raises(
        ReplaceError, match=r"^describing instance i-0123456789abcdef0: Could not connect to the endpoint URL"
    ):
        engine.replace()


# ----------------------------------------------------------------------------- autoscaling


def test_autoscaling_terminate_replaces_through_the_group(moto, estate):
    dead, other = estate.group(desired=2)
    check = asg_engine(moto, dead, action="terminate").replace(check_mode=True)
    assert check["changed"] is True and check["auto_scaling_group"] == estate.name
    assert check["msg"] == f"would terminate {dead} so that {estate.name} replaces it"
    assert {i["InstanceId"] for i in estate.describe_group()["Instances"]} == {dead, other}

    result = asg_engine(moto, dead, action="terminate").replace()
    assert result["changed"] is True and len(result["replacements"]) == 1, result
    (new,) = result["replacements"]
    group = estate.describe_group()
    assert {i["InstanceId"] for i in group["Instances"]} == {other, new}
    assert all(i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy" for i in group["Instances"])
    assert estate.targets() == {other: "healthy", new: "healthy"}
    assert estate.state(dead) == "terminated"

    # moto drops the instance's aws:autoscaling:groupName tag when it leaves the group (AWS keeps it): name the group
    again = asg_engine(moto, dead, action="terminate", group=estate.name).replace()
    assert again["changed"] is False and again["msg"] == f"{dead} is already replaced in {estate.name}", again


def test_autoscaling_unhealthy_marks_it_and_waits_for_the_group(moto, estate):
    dead, _other = estate.group(desired=2)
    # moto records the health status but, unlike AWS, never replaces an Unhealthy instance: the wait runs out.
    with pytest.raises(ReplaceError, match=rf"did not replace {dead} within 1 s: 1 of 2 instances healthy") as info:
        asg_engine(moto, dead, timeout=1).replace()
    assert info.value.changed is True
    member = next(i for i in estate.describe_group()["Instances"] if i["InstanceId"] == dead)
    assert member["HealthStatus"] == "Unhealthy"
    # Already marked: a second run does not mark it again, it only waits
    with pytest.raises(ReplaceError, match="did not replace") as info:
        asg_engine(moto, dead, timeout=0.3).replace()
    assert info.value.changed is False


def test_autoscaling_suspended_replacement_is_refused(moto, estate):
    dead, _other = estate.group(desired=2)
    estate.autoscaling.suspend_processes(AutoScalingGroupName=estate.name, ScalingProcesses=["ReplaceUnhealthy"])
    with pytest.raises(ReplaceError, match="has ReplaceUnhealthy suspended, so it would not replace"):
        asg_engine(moto, dead).replace()
    member = next(i for i in estate.describe_group()["Instances"] if i["InstanceId"] == dead)
    assert member["HealthStatus"] == "Healthy"


def test_autoscaling_instance_outside_any_group_says_so(moto, estate):
    loner = estate.launch()
    with pytest.raises(
        ReplaceError, match=rf"instance {loner} belongs to no Auto Scaling group \(or no longer\): name the group"
    ):
        asg_engine(moto, loner).replace()
