# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every snapshot provider shares."""

from __future__ import annotations

from ansible_collections.mttr.recovery.plugins.module_utils.aws import (
    AwsUnavailable,
    aws_argument_spec,
    botocore_errors,
    client,
)


class SnapshotError(Exception):
    """A snapshot or rollback cannot go on; the message says what is wrong and what to do.

    ``result`` is what was already changed before it stopped (``changed``, ``previous``,
    ``current``...), so the failure still says it and a caller can undo it.
    """

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result or {}


def provider_spec():
    """Options shared by the snapshot modules (each provider reads its own)."""
    spec = {
        "provider": {"type": "str", "required": True, "choices": ["release", "lvm", "ebs"]},
        "releases_dir": {"type": "path"},
        "current_link": {"type": "path"},
        "vg": {"type": "str"},
        "lv": {"type": "str"},
        "size": {"type": "str", "default": "1G"},
        "mountpoint": {"type": "path"},
        "instance_id": {"type": "str"},
        "device": {"type": "str"},
        "waiter_delay": {"type": "int", "default": 2},
    }
    spec.update(aws_argument_spec())
    return spec


PROVIDER_REQUIRED_IF = [
    ("provider", "release", ("releases_dir", "current_link")),
    ("provider", "lvm", ("vg", "lv")),
    ("provider", "ebs", ("instance_id", "device")),
]


def build_provider(module, restart_command=None):
    """The provider the module's parameters describe, wired to the module's command runner (MttrModule)."""
    params = module.params
    if params["provider"] == "release":
        from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_release import ReleaseProvider

        return ReleaseProvider(params["releases_dir"], params["current_link"], restart_command, module.run)
    if params["provider"] == "lvm":
        from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_lvm import LvmProvider

        return LvmProvider(params["vg"], params["lv"], module.run, params["size"], params.get("mountpoint"))
    from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_ebs import EbsProvider

    try:
        ec2 = client("ec2", params)
    except AwsUnavailable:
        module.require("boto3")
    return EbsProvider(ec2, params["instance_id"], params["device"], waiter_delay=params["waiter_delay"])


def snapshot_errors():
    """What a snapshot module reports as a failure: provider errors, OS errors, and AWS's once boto3 is loaded."""
    return (SnapshotError, OSError, *botocore_errors())


def fail_snapshot(module, exc):
    """One readable failure for provider errors and the AWS errors beneath them."""
    module.fail_from(exc, readable=(SnapshotError,))
