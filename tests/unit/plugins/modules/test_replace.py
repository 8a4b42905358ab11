"""The replace module through the unit-test harness: a real HAProxy and real instances (haproxy), moto over HTTP (AWS).

What the engines do is tested beside them (tests/unit/plugins/module_utils/test_replace_*.py); here, the adapter:
its options reach the engine, check and diff mode, ``changed`` on failures, and one-line messages.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime
from ansible_collections.mttr.recovery.plugins.module_utils.processes import pid_alive
from ansible_collections.mttr.recovery.plugins.modules import replace
from ansible_collections.mttr.recovery.tests.support import instance
from ansible_collections.mttr.recovery.tests.support.haproxy import HttpHAProxy
from ansible_collections.mttr.recovery.tests.support.moto import MotoServer
from ansible_collections.mttr.recovery.tests.support.processes import free_port
from ansible_collections.mttr.recovery.tests.unit.plugins.modules.utils import AnsibleFailJson, run_module


@pytest.fixture
def backend(tmp_path):
    """HAProxy with one dead server (app1), and the module's options to replace it; instances stopped afterwards."""
    server = HttpHAProxy(tmp_path, {"app1": free_port()})
    pidfile = f"{tmp_path}/{{name}}.pid"
    options = {
        "provider": "haproxy",
        "admin_socket": str(server.socket),
        "backend": "be",
        "start_command": [sys.executable, instance.SCRIPT, "--port", "{port}", "--pidfile", pidfile],
        "pidfile": pidfile,
        "ports": [free_port(), free_port()],
        "timeout": 10,
    }
    yield server, options
    server.stop()
    for path in tmp_path.glob("*.pid"):
        pid = int(path.read_text().strip() or 0)
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


@pytest.mark.integration
def test_haproxy_check_then_replace_then_nothing(backend):
    server, options = backend
    runtime = HAProxyRuntime(str(server.socket))
    check = run_module(replace, options, check=True, diff=True)
    assert check["changed"] is True and check["plan"][0]["name"] == "app2", check
    assert check["diff"]["after"]["servers"] == {"app2": f"127.0.0.1:{options['ports'][0]} UP"}
    assert set(runtime.server_status("be")) == {"app1"}

    result = run_module(replace, options)
    assert result["changed"] is True and result["removed"] == ["app1"] and "diff" not in result, result
    (started,) = result["started"]
    assert pid_alive(started["pid"]) and started["command"][3] == str(options["ports"][0])
    status = runtime.server_status("be")
    assert list(status) == ["app2"] and status["app2"].startswith("UP"), status

    again = run_module(replace, options, diff=True)
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"]


@pytest.mark.integration
def test_haproxy_failure_reports_the_change_it_made(backend):
    _server, options = backend
    failed = run_module(
        replace, dict(options, start_command=[*options["start_command"], "--unhealthy"], timeout=1), AnsibleFailJson
    )
    assert failed["changed"] is True and "exception" not in failed
    assert failed["msg"].startswith("the replacement app2 did not answer") and failed["msg"].endswith("it was stopped")
    assert failed["started"][0]["name"] == "app2"


def test_haproxy_needs_its_options():
    failed = run_module(replace, {"provider": "haproxy", "backend": "be"}, AnsibleFailJson)
    assert (
        failed["msg"] == "provider is haproxy but all of the following are missing: admin_socket, start_command, ports"
    )


def test_unreachable_runtime_api_is_one_line(tmp_path):
    options = {
        "provider": "haproxy",
        "admin_socket": str(tmp_path / "none.sock"),
        "backend": "be",
        "start_command": ["true"],
        "ports": [1],
    }
    failed = run_module(replace, options, AnsibleFailJson)
    assert failed["changed"] is False and "is HAProxy running?" in failed["msg"] and "exception" not in failed


@pytest.fixture(scope="module")
def moto():
    server = MotoServer("ec2")
    yield server
    server.stop()


@pytest.mark.integration
def test_ec2_through_the_module(moto):
    name = f"web-{uuid.uuid4().hex[:8]}"
    ec2, elbv2 = moto.ec2, moto.new_client("elbv2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": moto.image_id})
    arn = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
    dead = ec2.run_instances(LaunchTemplate={"LaunchTemplateName": name}, MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": dead}])
    options = moto.aws_options(provider="ec2", instance_id=dead, target_groups=[name], waiter_delay=0, timeout=10)

    check = run_module(replace, options, check=True)
    assert check["changed"] is True and check["replacement"] is None and check["msg"].startswith("would replace")
    result = run_module(replace, options, diff=True)
    new = result["replacement"]
    assert result["changed"] is True and result["diff"]["after"]["targets"] == {arn: {new: "healthy"}}
    assert run_module(replace, options)["changed"] is False

    failed = run_module(replace, dict(options, instance_id="i-0123456789abcdef0"), AnsibleFailJson)
    assert failed["changed"] is False and failed["msg"].startswith("instance i-0123456789abcdef0 does not exist")


def test_unreachable_aws_endpoint_is_one_line():
    options = {
        "provider": "autoscaling",
        "instance_id": "i-0123456789abcdef0",
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "region": "us-east-1",
        "access_key": "a",
        "secret_key": "b",
    }
    failed = run_module(replace, options, AnsibleFailJson)
    assert failed["changed"] is False and "exception" not in failed
    assert failed["msg"].startswith("describing instance i-0123456789abcdef0: Could not connect to the endpoint URL")
