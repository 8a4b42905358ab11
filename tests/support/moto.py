"""moto's server in a subprocess: AWS APIs on a free 127.0.0.1 port, reached by real boto3 clients over HTTP."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from ansible_collections.mttr.recovery.tests.support.processes import free_port

ACCESS_KEY = "mttr-test-key"
SECRET_KEY = "mttr-test-secret"
REGION = "us-east-1"


class MotoServer:
    """``moto.server`` on a free port. It serves every AWS API there; ``client`` speaks ``service``.

    The helpers below need their API only, whatever ``service`` is: the backup repositories S3
    (``repository_options``, ``repository``), the ebs snapshot provider EC2 (``launch``, ``attached``...).
    """

    def __init__(self, service: str = "s3"):
        self.service = service
        self.process = None
        fd, self.log = tempfile.mkstemp(prefix=f"mttr-moto-{service}-", suffix=".log")
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

    def new_client(self, service: str | None = None):
        """A new boto3 client of this server for ``service`` (default: the server's own)."""
        import boto3

        return boto3.client(
            service or self.service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def aws_options(self, **extra) -> dict:
        """The modules' AWS options (``mttr.recovery.aws``) that reach this server; ``extra`` adds or overrides."""
        options = {"endpoint_url": self.endpoint, "region": REGION, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
        options.update(extra)
        return options

    def reset(self) -> None:
        """Forget every resource (moto's own API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

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

    # ------------------------------------------------------------------------- S3: backup repositories

    def repository_options(self, bucket: str, **extra) -> dict:
        """The ``repository`` option of the backup modules for a bucket on this server."""
        options = self.aws_options(type="s3", bucket=bucket, prefix="", multipart_chunk_mb=16, max_concurrency=4)
        options.update(extra)
        return options

    def repository(self, prefix: str = "backups", **extra):
        """A repository in a new bucket, built by the modules' own factory (boto3 client, transfer config)."""
        from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import make_repository

        bucket = f"mttr-{uuid.uuid4().hex[:12]}"
        repository = make_repository(self.repository_options(bucket, prefix=prefix, **extra))
        repository.client.create_bucket(Bucket=bucket)
        return repository

    # ------------------------------------------------------------------------- EC2: instances and volumes

    @functools.cached_property
    def ec2(self):
        return self.client if self.service == "ec2" else self.new_client("ec2")

    @functools.cached_property
    def image_id(self) -> str:
        """One of moto's default AMIs (loading them takes a few seconds once; a reset keeps the same ids)."""
        images = self.ec2.describe_images(
            Owners=["amazon"],
            Filters=[
                {"Name": "name", "Values": ["amzn2-ami-hvm-*"]},
                {"Name": "root-device-type", "Values": ["ebs"]},
            ],
        )["Images"]
        return images[0]["ImageId"]

    def launch(self) -> tuple[str, str]:
        """A running instance from the default AMI: ``(instance_id, device of its root volume)``.

        The device is read from the instance's block device mappings, not from ``RootDeviceName``: moto
        attaches every root volume at /dev/sda1 whatever the AMI says (here /dev/xvda).
        """
        instance = self.ec2.run_instances(ImageId=self.image_id, MinCount=1, MaxCount=1, InstanceType="t3.micro")[
            "Instances"
        ][0]
        mappings = self.describe(instance["InstanceId"])["BlockDeviceMappings"]
        assert len(mappings) == 1, mappings
        return instance["InstanceId"], mappings[0]["DeviceName"]

    def describe(self, instance_id: str) -> dict:
        return self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]

    def attached(self, instance_id: str, device: str) -> str | None:
        """The id of the volume attached at ``device``, or None."""
        for mapping in self.describe(instance_id).get("BlockDeviceMappings", []):
            if mapping["DeviceName"] == device:
                return mapping["Ebs"]["VolumeId"]
        return None

    def volume(self, volume_id: str) -> dict:
        return self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]

    def volume_ids(self) -> set:
        return {v["VolumeId"] for v in self.ec2.describe_volumes()["Volumes"]}
