# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace engine, AWS providers: a new EC2 instance in the dead one's place behind its target groups.

- ``ec2``: launch one instance from the launch template (the dead instance's own, from the tags EC2 puts
  on instances launched from one), tag it as the dead one's replacement, wait until it runs and passes
  its status checks, register it in the target groups and wait until they report it healthy, then
  deregister and terminate the dead one. The tag is what makes a second run find the replacement
  instead of launching another.
- ``autoscaling``: let the group replace the dead instance - ``set_instance_health(Unhealthy)`` (the
  group's own ReplaceUnhealthy process terminates and replaces it) or
  ``terminate_instance_in_auto_scaling_group`` without decrementing the desired capacity (immediate) -
  then wait until the group has its desired capacity of healthy InService instances without the dead
  one and its target groups report them healthy.
"""

from __future__ import annotations

import math
import time

from ansible_collections.mttr.recovery.plugins.module_utils.aws import botocore_errors
from ansible_collections.mttr.recovery.plugins.module_utils.failover_common import first_line
from ansible_collections.mttr.recovery.plugins.module_utils.replace_common import ReplaceError, wait_until

REPLACES_TAG = "mttr-recovery:replaces"
LAUNCH_TEMPLATE_TAG = "aws:ec2launchtemplate:id"
GROUP_TAG = "aws:autoscaling:groupName"
GONE = ("shutting-down", "terminated")
# Target states that still send (or are about to send) traffic to the target.
REGISTERED = ("initial", "healthy", "unhealthy", "unavailable")


def tags_of(resource: dict) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}


def error_code(exc) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


class AwsReplace:
    """What both AWS providers share: the clients, the dead instance, the target groups, the waits."""

    def __init__(self, clients, instance_id: str, *, target_groups=None, timeout: float = 600, delay: float = 5):
        self.ec2 = clients("ec2")
        self.elbv2 = clients("elbv2")
        self.instance_id = instance_id
        self.target_group_names = list(target_groups or [])
        self.timeout = timeout
        self.delay = delay
        self.result = {"changed": False, "instance": instance_id}

    def fail(self, message: str):
        raise ReplaceError(message, changed=self.result["changed"], result=dict(self.result))

    def aws(self, what: str, call, *args, **kwargs):
        """One AWS call; a botocore error becomes a ReplaceError saying what was being done."""
        try:
            return call(*args, **kwargs)
        except botocore_errors() as exc:
            self.fail(f"{what}: {first_line(exc)}")

    def instance(self, instance_id: str) -> dict | None:
        """The instance, or None when EC2 does not know it (never launched, or terminated long ago)."""
        try:
            reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except botocore_errors() as exc:
            if error_code(exc) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            self.fail(f"describing instance {instance_id}: {first_line(exc)}")
        instances = [i for r in reservations for i in r["Instances"]]
        return instances[0] if instances else None

    def target_group_arns(self, names: list[str]) -> list[str]:
        arns = [name for name in names if name.startswith("arn:")]
        plain = [name for name in names if not name.startswith("arn:")]
        if plain:
            groups = self.aws(
                "finding target groups " + ", ".join(plain), self.elbv2.describe_target_groups, Names=plain
            )
            arns += [group["TargetGroupArn"] for group in groups["TargetGroups"]]
        return arns

    def targets(self, arns: list[str]) -> dict[str, dict[str, str]]:
        """``{target group arn: {instance id: state}}`` for the instances registered (or draining) there."""
        health = {}
        for arn in arns:
            described = self.aws(
                f"reading the targets of {arn}", self.elbv2.describe_target_health, TargetGroupArn=arn
            )["TargetHealthDescriptions"]
            health[arn] = {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described}
        return health

    def waiter(self, client, name: str, what: str, **kwargs) -> None:
        config = {"Delay": self.delay, "MaxAttempts": max(1, math.ceil(self.timeout / max(self.delay, 1)))}
        try:
            client.get_waiter(name).wait(WaiterConfig=config, **kwargs)
        except botocore_errors() as exc:
            self.fail(f"{what} within {self.timeout:g} s: {first_line(exc)}")
        except Exception as exc:  # botocore's WaiterError is not one of its BotoCoreError/ClientError
            if type(exc).__name__ != "WaiterError":
                raise
            self.fail(f"{what} within {self.timeout:g} s: {first_line(exc)}")

    def deregister(self, health: dict[str, dict[str, str]]) -> list[str]:
        """Take the dead instance out of every target group that still lists it as a target."""
        done = []
        for arn, targets in health.items():
            if targets.get(self.instance_id) in REGISTERED:
                self.aws(
                    f"deregistering {self.instance_id} from {arn}",
                    self.elbv2.deregister_targets,
                    TargetGroupArn=arn,
                    Targets=[{"Id": self.instance_id}],
                )
                self.result["changed"] = True
                done.append(arn)
        return done


class Ec2Replace(AwsReplace):
    def __init__(self, clients, instance_id, *, launch_template=None, launch_template_version=None, **kwargs):
        super().__init__(clients, instance_id, **kwargs)
        self.launch_template = launch_template
        self.launch_template_version = launch_template_version

    def find_replacement(self) -> dict | None:
        reservations = self.aws(
            f"looking for a replacement of {self.instance_id}",
            self.ec2.describe_instances,
            Filters=[
                {"Name": f"tag:{REPLACES_TAG}", "Values": [self.instance_id]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ],
        )["Reservations"]
        instances = [i for r in reservations for i in r["Instances"]]
        return instances[0] if instances else None

    def template(self, dead: dict | None) -> dict:
        if self.launch_template:
            key = "LaunchTemplateId" if self.launch_template.startswith("lt-") else "LaunchTemplateName"
            spec = {key: self.launch_template}
        elif dead and LAUNCH_TEMPLATE_TAG in tags_of(dead):
            spec = {"LaunchTemplateId": tags_of(dead)[LAUNCH_TEMPLATE_TAG]}
        else:
            self.fail(
                f"no launch template to replace {self.instance_id} from: it was not launched from one "
                "(no aws:ec2launchtemplate:id tag); name one with launch_template"
            )
        spec["Version"] = self.launch_template_version or "$Default"
        return spec

    def replace(self, check_mode: bool = False) -> dict:
        dead = self.instance(self.instance_id)
        replacement = self.find_replacement()
        if dead is None and replacement is None:
            self.fail(f"instance {self.instance_id} does not exist (and no instance is tagged as its replacement)")
        arns = self.target_group_arns(self.target_group_names)
        if not arns:
            self.fail("no target group: name the ones the instance serves in target_groups")
        before = self.targets(arns)
        new_id = replacement["InstanceId"] if replacement else None
        plan = {
            "launch": replacement is None,
            "register": [arn for arn in arns if new_id is None or before[arn].get(new_id) not in REGISTERED],
            "deregister": [arn for arn in arns if before[arn].get(self.instance_id) in REGISTERED],
            "terminate": dead is not None and dead["State"]["Name"] not in GONE,
        }
        changed = bool(plan["launch"] or plan["register"] or plan["deregister"] or plan["terminate"])
        self.result.update(provider="ec2", replacement=new_id, target_groups=arns, plan=plan)
        if not changed or check_mode:
            self.result.update(
                changed=changed,
                diff={"before": {"targets": before}, "after": {"targets": self.expected(before, plan, new_id)}},
                msg=(f"would replace {self.instance_id}: " + self.describe_plan(plan))
                if changed
                else f"{self.instance_id} is already replaced by {new_id}",
            )
            return self.result
        started = time.monotonic()
        if plan["launch"]:
            template = self.template(dead)
            launched = self.aws(
                f"launching a replacement of {self.instance_id} from launch template {template}",
                self.ec2.run_instances,
                LaunchTemplate=template,
                MinCount=1,
                MaxCount=1,
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": [{"Key": REPLACES_TAG, "Value": self.instance_id}]}
                ],
            )["Instances"][0]
            new_id = launched["InstanceId"]
            self.result.update(changed=True, replacement=new_id, launched=new_id)
        self.waiter(self.ec2, "instance_running", f"{new_id} did not run", InstanceIds=[new_id])
        self.waiter(self.ec2, "instance_status_ok", f"{new_id} did not pass its status checks", InstanceIds=[new_id])
        for arn in plan["register"]:
            self.aws(
                f"registering {new_id} in {arn}",
                self.elbv2.register_targets,
                TargetGroupArn=arn,
                Targets=[{"Id": new_id}],
            )
            self.result["changed"] = True
        self.result["registered"] = plan["register"]
        for arn in arns:
            self.waiter(
                self.elbv2,
                "target_in_service",
                f"{arn} did not report {new_id} healthy",
                TargetGroupArn=arn,
                Targets=[{"Id": new_id}],
            )
        self.result["deregistered"] = self.deregister(self.targets(arns))
        if plan["terminate"]:
            self.aws(f"terminating {self.instance_id}", self.ec2.terminate_instances, InstanceIds=[self.instance_id])
            self.result.update(changed=True, terminated=self.instance_id)
        self.result.update(
            diff={"before": {"targets": before}, "after": {"targets": self.targets(arns)}},
            timings={"replace_s": round(time.monotonic() - started, 3)},
            msg=f"replaced {self.instance_id} by {new_id} in {len(arns)} target group(s)",
        )
        return self.result

    def expected(self, before, plan, new_id):
        after = {arn: dict(targets) for arn, targets in before.items()}
        for arn in plan["deregister"]:
            after[arn].pop(self.instance_id, None)
        for arn in plan["register"]:
            after[arn][new_id or "(new instance)"] = "healthy"
        return after

    def describe_plan(self, plan) -> str:
        steps = []
        if plan["launch"]:
            steps.append("launch an instance from its launch template")
        if plan["register"]:
            steps.append(f"register it in {len(plan['register'])} target group(s)")
        if plan["deregister"]:
            steps.append(f"deregister {self.instance_id} from {len(plan['deregister'])} target group(s)")
        if plan["terminate"]:
            steps.append(f"terminate {self.instance_id}")
        return ", ".join(steps)


class AutoScalingReplace(AwsReplace):
    ACTIONS = ("unhealthy", "terminate")

    def __init__(self, clients, instance_id, *, group=None, action="unhealthy", **kwargs):
        super().__init__(clients, instance_id, **kwargs)
        self.autoscaling = clients("autoscaling")
        self.group_name = group
        self.action = action

    def group(self, name: str) -> dict:
        groups = self.aws(
            f"reading Auto Scaling group {name}",
            self.autoscaling.describe_auto_scaling_groups,
            AutoScalingGroupNames=[name],
        )["AutoScalingGroups"]
        if not groups:
            self.fail(f"Auto Scaling group {name} does not exist")
        return groups[0]

    def healthy(self, group: dict) -> list[str]:
        return [
            i["InstanceId"]
            for i in group["Instances"]
            if i["LifecycleState"] == "InService"
            and i["HealthStatus"] == "Healthy"
            and i["InstanceId"] != self.instance_id
        ]

    def replace(self, check_mode: bool = False) -> dict:
        described = self.instance(self.instance_id)
        if described is None:
            self.fail(f"instance {self.instance_id} does not exist")
        membership = self.aws(
            f"reading the Auto Scaling group of {self.instance_id}",
            self.autoscaling.describe_auto_scaling_instances,
            InstanceIds=[self.instance_id],
        )["AutoScalingInstances"]
        # A replaced instance has left its group; AWS keeps the group's name in its tags.
        name = (
            self.group_name
            or (membership[0]["AutoScalingGroupName"] if membership else None)
            or tags_of(described).get(GROUP_TAG)
        )
        if name is None:
            self.fail(
                f"instance {self.instance_id} belongs to no Auto Scaling group (or no longer): "
                "name the group in auto_scaling_group"
            )
        group = self.group(name)
        suspended = {p["ProcessName"] for p in group.get("SuspendedProcesses", [])}
        needed = {"Launch", "Terminate"} | (
            {"ReplaceUnhealthy", "HealthCheck"} if self.action == "unhealthy" else set()
        )
        member = next((i for i in group["Instances"] if i["InstanceId"] == self.instance_id), None)
        arns = self.target_group_arns(self.target_group_names) or list(group.get("TargetGroupARNs", []))
        before = self.targets(arns)
        act = member is not None and (self.action == "terminate" or member["HealthStatus"] != "Unhealthy")
        self.result.update(provider="autoscaling", auto_scaling_group=name, target_groups=arns)
        if act and suspended & needed:
            self.fail(
                f"Auto Scaling group {name} has {', '.join(sorted(suspended & needed))} suspended, so it would not "
                f"replace {self.instance_id}: resume the process(es) (aws autoscaling resume-processes) first"
            )
        original = set(self.healthy(group))
        stale = [arn for arn in arns if before[arn].get(self.instance_id) in REGISTERED]
        if check_mode:
            changed = act or bool(stale)
            self.result.update(
                changed=changed,
                replacements=[],
                diff={"before": self.view(group, before), "after": self.view(group, before)},
                msg=(f"would {self.verb()} {self.instance_id} so that {name} replaces it" if act else "")
                or (f"would deregister {self.instance_id} from {len(stale)} target group(s)" if stale else "")
                or f"{self.instance_id} is already out of {name}",
            )
            return self.result
        if not act and self.replaced(group, arns):
            self.result.update(
                deregistered=self.deregister(before),
                replacements=[],
                diff={"before": self.view(group, before), "after": self.view(group, self.targets(arns))},
                msg=f"{self.instance_id} is already replaced in {name}",
            )
            return self.result
        started = time.monotonic()
        if act:
            if self.action == "terminate":
                self.aws(
                    f"terminating {self.instance_id} in {name}",
                    self.autoscaling.terminate_instance_in_auto_scaling_group,
                    InstanceId=self.instance_id,
                    ShouldDecrementDesiredCapacity=False,
                )
            else:
                self.aws(
                    f"marking {self.instance_id} unhealthy in {name}",
                    self.autoscaling.set_instance_health,
                    InstanceId=self.instance_id,
                    HealthStatus="Unhealthy",
                    ShouldRespectGracePeriod=False,
                )
            self.result["changed"] = True
        last = {"group": group}

        def settled():
            last["group"] = self.group(name)
            return self.replaced(last["group"], arns)

        if not wait_until(settled, self.timeout, interval=self.delay):
            self.fail(
                f"{name} did not replace {self.instance_id} within {self.timeout:g} s: "
                f"{len(self.healthy(last['group']))} of {last['group']['DesiredCapacity']} instances healthy "
                f"without it ({self.instance_id} {self.state_in(last['group'])})"
            )
        self.result["deregistered"] = self.deregister(self.targets(arns))
        after = self.targets(arns)
        self.result.update(
            replacements=sorted(set(self.healthy(last["group"])) - original),
            diff={"before": self.view(group, before), "after": self.view(last["group"], after)},
            timings={"replace_s": round(time.monotonic() - started, 3)},
            msg=f"{name} replaced {self.instance_id}: "
            + (", ".join(sorted(set(self.healthy(last["group"])) - original)) or "no new instance needed"),
        )
        return self.result

    def verb(self) -> str:
        return "terminate" if self.action == "terminate" else "mark unhealthy"

    def state_in(self, group: dict) -> str:
        member = next((i for i in group["Instances"] if i["InstanceId"] == self.instance_id), None)
        return f"{member['LifecycleState']}, {member['HealthStatus']}" if member else "out of the group"

    def replaced(self, group: dict, arns: list[str]) -> bool:
        """The dead instance is out of service, the group has its capacity of healthy instances without it,
        and every target group reports each of them healthy."""
        member = next((i for i in group["Instances"] if i["InstanceId"] == self.instance_id), None)
        if member is not None and member["LifecycleState"] == "InService" and member["HealthStatus"] == "Healthy":
            return False
        healthy = self.healthy(group)
        if len(healthy) < group["DesiredCapacity"]:
            return False
        health = self.targets(arns)
        return all(health[arn].get(instance) == "healthy" for arn in arns for instance in healthy)

    def view(self, group: dict, targets: dict) -> dict:
        return {
            "instances": {i["InstanceId"]: f"{i['LifecycleState']} {i['HealthStatus']}" for i in group["Instances"]},
            "targets": targets,
        }
