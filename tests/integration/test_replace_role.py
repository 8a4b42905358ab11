"""The replace role against the lab's app-crash, through ansible-runner: a new app instance on a new port takes
the crashed one's place in HAProxy's app backend, proven from the service (HAProxy's frontend and runtime API,
the process behind the new port, the lab's own tracking); and the AWS providers against moto over HTTP."""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.processes import pid_alive
from ansible_collections.mttr.recovery.tests.support.moto import MotoServer
from conftest import REPO, run_playbook, task_result

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "replace.yml"
PLAYBOOK_AWS = REPO / "tests" / "integration" / "playbooks" / "replace_aws.yml"
REPLACE = "Replace the dead instance and move its traffic to the replacement"
WAIT = "Wait until the service's probes are healthy"


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return None, None


def changed_tasks(runner):
    return [
        e["event_data"]["task"]
        for e in runner.events
        if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")
    ]


def app_processes(home) -> list[int]:
    """Live processes running one of the lab's app releases under ``home``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"{home}/app/" in cmdline and "app.py" in cmdline and pid_alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def test_crashed_app_is_replaced_behind_haproxy(fresh_lab, tmp_path, record_property):
    lab = fresh_lab.lab
    public = lab.cfg.state["app"]["public_url"]
    backend = lab.cfg.state["lb"]["app_backend"]
    fresh_lab.mttr("break", "app-crash")
    assert get(public + "/health")[0] != 200

    check = run_playbook(tmp_path / "check", fresh_lab.home, PLAYBOOK, ident="check", cmdline="--check --diff")
    assert check.status == "successful", check.stdout.read()
    planned = task_result(check, REPLACE)
    port = lab.cfg.ports["app"] + 1
    assert planned["changed"] is True and planned["plan"] == [
        {"replaces": "app1", "name": "app2", "address": "127.0.0.1", "port": port}
    ], planned
    assert list(lab.haproxy.runtime.server_status(backend)) == ["app1"], "check mode changed the backend"
    assert lab.app.replacements() == [] and get(public + "/health")[0] != 200

    started = time.monotonic()
    runner = run_playbook(tmp_path / "run", fresh_lab.home, PLAYBOOK, ident="run")
    elapsed = time.monotonic() - started
    output = runner.stdout.read()
    assert runner.status == "successful" and runner.rc == 0, output
    assert "[WARNING]" not in output, output
    result = task_result(runner, REPLACE)
    assert result["changed"] is True and result["removed"] == ["app1"] and result["added"] == ["app2"]
    assert task_result(runner, WAIT)["status"] == "healthy"
    # From the service: HAProxy's HTTP frontend answers, its runtime API lists the new server UP and not the
    # dead one, and the process behind the new port is the current release, known to the lab.
    status, body = get(public + "/health")
    assert status == 200 and body["status"] == "ok", body
    servers = lab.haproxy.runtime.server_status(backend)
    assert list(servers) == ["app2"] and servers["app2"].startswith("UP"), servers
    (new,) = result["started"]
    assert new["port"] == port and get(f"http://127.0.0.1:{port}/version")[1] == {"version": lab.app.current_version()}
    (tracked,) = lab.app.replacements()
    assert tracked.pid() == new["pid"]
    cmdline = Path(f"/proc/{new['pid']}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1].decode() == str(lab.app.entry)
    rows = {row["component"]: row for row in json.loads(fresh_lab.mttr("status", "--json").stdout)}
    assert rows["app"]["state"] == "up" and rows["app"]["pid"] == new["pid"]
    assert rows["haproxy"]["state"] == "up" and "app2 UP" in rows["haproxy"]["detail"]

    timings = []
    for attempt in range(3):
        again_started = time.monotonic()
        again = run_playbook(tmp_path / f"again{attempt}", fresh_lab.home, PLAYBOOK, ident=f"again{attempt}")
        timings.append(time.monotonic() - again_started)
        assert again.status == "successful", again.stdout.read()
        assert changed_tasks(again) == []
    assert list(lab.haproxy.runtime.server_status(backend)) == ["app2"]
    record_property(
        "figure",
        f"replace role (lab app-crash): replacing run {elapsed:.2f} s "
        f"(engine {result['timings']['replace_s']:.2f} s); no-op run median {statistics.median(timings):.2f} s",
    )

    down = fresh_lab.mttr("down")
    assert f"Stopped the app's replacement app2 (pid {new['pid']})" in down.stdout, down.stdout
    assert app_processes(fresh_lab.home) == [], "an app process outlived 'mttr lab down'"


def test_replace_without_a_start_command_is_a_clear_error(fresh_lab, tmp_path):
    runner = run_playbook(tmp_path / "none", fresh_lab.home, PLAYBOOK, {"replace_start_command": []}, ident="none")
    output = runner.stdout.read()
    assert runner.status == "failed"
    assert "replace (haproxy) needs the runtime API socket and backend" in output


@pytest.fixture(scope="module")
def moto():
    server = MotoServer("ec2")
    yield server
    server.stop()


def test_autoscaling_group_replaces_through_the_role(moto, tmp_path):
    """An Auto Scaling group behind a target group, made through boto3 over HTTP; the role run on localhost
    (no lab needed: nothing reads the lab's state)."""
    name = f"web-{uuid.uuid4().hex[:8]}"
    ec2, elbv2, autoscaling = moto.ec2, moto.new_client("elbv2"), moto.new_client("autoscaling")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": moto.image_id})
    arn = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": name},
        MinSize=1,
        MaxSize=3,
        DesiredCapacity=2,
        TargetGroupARNs=[arn],
        VPCZoneIdentifier=subnet,
    )

    def members():
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        return {i["InstanceId"]: (i["LifecycleState"], i["HealthStatus"]) for i in group["Instances"]}

    dead, other = members()
    extravars = {
        "replace_provider": "autoscaling",
        "replace_instance_id": dead,
        "replace_auto_scaling_group": name,
        "replace_autoscaling_action": "terminate",
        "replace_timeout": 20,
        "replace_aws": moto.aws_options(),
    }
    check = run_playbook(tmp_path / "check", tmp_path, PLAYBOOK_AWS, extravars, ident="check", cmdline="--check")
    assert check.status == "successful", check.stdout.read()
    assert task_result(check, REPLACE)["changed"] is True and set(members()) == {dead, other}

    runner = run_playbook(tmp_path / "run", tmp_path, PLAYBOOK_AWS, extravars, ident="run")
    assert runner.status == "successful", runner.stdout.read()
    (new,) = task_result(runner, REPLACE)["replacements"]
    assert members() == {other: ("InService", "Healthy"), new: ("InService", "Healthy")}
    described = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    assert {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described} == {other: "healthy", new: "healthy"}

    again = run_playbook(tmp_path / "again", tmp_path, PLAYBOOK_AWS, extravars, ident="again")
    assert again.status == "successful" and changed_tasks(again) == [], again.stdout.read()
