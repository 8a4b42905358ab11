"""Real components for the snapshot provider tests: release trees, a command runner, a moto EC2 server.

Shared by ``test_snapshot_release.py``, ``test_snapshot_ebs.py``, ``test_snapshot_lvm.py`` and
``tests/unit/plugins/modules/test_snapshot_modules.py``. Deliberately not a ``conftest.py``
(``tests/conftest.py`` is imported as the top-level module ``conftest``); each test module wraps these
helpers in its own fixtures.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.local_processes import free_port
from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.local_processes import (
    run_process as _run_process,
)

run_process = functools.partial(_run_process, timeout=60)

ACCESS_KEY = "mttr-test-key"
SECRET_KEY = "mttr-test-secret"
REGION = "us-east-1"


# ----------------------------------------------------------------------------- release trees


def make_releases(root, versions, current=None):
    """``root/releases/<version>/`` (each with a VERSION file) and ``root/current`` -> ``releases/<current>``.

    Returns ``(releases_dir, current_link)`` as strings. The link is relative, as Capistrano writes it.
    """
    root = Path(root)
    releases = root / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    for version in versions:
        (releases / version).mkdir()
        (releases / version / "VERSION").write_text(version + "\n")
    link = root / "current"
    if current is not None:
        os.symlink(os.path.join("releases", current), link)
    return str(releases), str(link)


def link_target(link) -> str:
    """The release a ``current`` link points at (its last path component)."""
    return os.path.basename(os.readlink(link))


# ----------------------------------------------------------------------------- LVM


def printf_runner(text, calls=None):
    """A runner that answers every command with a real ``printf '%s' text`` process (for ``lvs`` parsing).

    ``calls`` (a list) receives each argv the provider asked for, so its shape can be checked too.
    """

    def run(argv, env):
        if calls is not None:
            calls.append((list(argv), env))
        return run_process(["printf", "%s", text], env)

    return run


# ----------------------------------------------------------------------------- EC2 (moto server)


class MotoEc2:
    """``moto.server`` in a subprocess on a free 127.0.0.1 port; EC2 through real boto3 clients over HTTP."""

    def __init__(self):
        self.process = None
        fd, self.log = tempfile.mkstemp(prefix="mttr-moto-ec2-", suffix=".log")
        os.close(fd)
        for attempt in range(3):  # another process may take the free port before moto binds it
            self.port = free_port()
            self.endpoint = f"http://127.0.0.1:{self.port}"
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY),
                )
            if self._wait():
                break
            self.stop()
            if attempt == 2:
                raise RuntimeError(f"moto server did not start: {Path(self.log).read_text(errors='replace')}")
        self.client = self.new_client()
        # One of moto's default AMIs (loading them takes a few seconds once; a reset keeps the same ids).
        images = self.client.describe_images(
            Owners=["amazon"],
            Filters=[
                {"Name": "name", "Values": ["amzn2-ami-hvm-*"]},
                {"Name": "root-device-type", "Values": ["ebs"]},
            ],
        )["Images"]
        self.image_id = images[0]["ImageId"]

    def _wait(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    def new_client(self):
        import boto3

        return boto3.client(
            "ec2",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def options(self, instance_id: str, device: str) -> dict:
        """The provider options of the snapshot modules for an instance on this server."""
        return {
            "provider": "ebs",
            "instance_id": instance_id,
            "device": device,
            "endpoint_url": self.endpoint,
            "region": REGION,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "waiter_delay": 0,
        }

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def launch(self) -> tuple[str, str]:
        """A running instance from the default AMI: ``(instance_id, device of its root volume)``.

        The device is read from the instance's block device mappings, not from ``RootDeviceName``: moto
        attaches every root volume at /dev/sda1 whatever the AMI says (here /dev/xvda).
        """
        instance = self.client.run_instances(ImageId=self.image_id, MinCount=1, MaxCount=1, InstanceType="t3.micro")[
            "Instances"
        ][0]
        mappings = self.describe(instance["InstanceId"])["BlockDeviceMappings"]
        assert len(mappings) == 1, mappings
        return instance["InstanceId"], mappings[0]["DeviceName"]

    def describe(self, instance_id: str) -> dict:
        return self.client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]

    def attached(self, instance_id: str, device: str) -> str | None:
        """The id of the volume attached at ``device``, or None."""
        for mapping in self.describe(instance_id).get("BlockDeviceMappings", []):
            if mapping["DeviceName"] == device:
                return mapping["Ebs"]["VolumeId"]
        return None

    def volume(self, volume_id: str) -> dict:
        return self.client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]

    def volume_ids(self) -> set:
        return {v["VolumeId"] for v in self.client.describe_volumes()["Volumes"]}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if os.path.exists(self.log):
            os.unlink(self.log)
