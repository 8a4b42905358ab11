# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every snapshot provider shares."""

from __future__ import annotations


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
    return {
        "provider": {"type": "str", "required": True, "choices": ["release", "lvm", "ebs"]},
        "releases_dir": {"type": "path"},
        "current_link": {"type": "path"},
        "vg": {"type": "str"},
        "lv": {"type": "str"},
        "size": {"type": "str", "default": "1G"},
        "mountpoint": {"type": "path"},
        "instance_id": {"type": "str"},
        "device": {"type": "str"},
        "region": {"type": "str"},
        "endpoint_url": {"type": "str"},
        "access_key": {"type": "str", "no_log": True},
        "secret_key": {"type": "str", "no_log": True},
        "session_token": {"type": "str", "no_log": True},
        "waiter_delay": {"type": "int", "default": 2},
    }


PROVIDER_REQUIRED_IF = [
    ("provider", "release", ("releases_dir", "current_link")),
    ("provider", "lvm", ("vg", "lv")),
    ("provider", "ebs", ("instance_id", "device")),
]


def build_provider(module, restart_command=None):
    """The provider the module's parameters describe, wired to the module's command runner."""
    params = module.params

    def run(argv, env):
        # a command that cannot be started is a result like any failure, not an exit from the module:
        # the provider may already have changed something that the failure must report
        try:
            return module.run_command(argv, environ_update=env or {}, handle_exceptions=False)
        except OSError as exc:
            return 127, "", f"cannot run {argv[0]}: {exc.strerror or exc}"

    if params["provider"] == "release":
        from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_release import ReleaseProvider

        return ReleaseProvider(params["releases_dir"], params["current_link"], restart_command, run)
    if params["provider"] == "lvm":
        from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_lvm import LvmProvider

        return LvmProvider(params["vg"], params["lv"], run, params["size"], params.get("mountpoint"))
    try:
        import boto3
    except ImportError:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("boto3"))
    from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_ebs import EbsProvider

    client = boto3.client(
        "ec2",
        endpoint_url=params.get("endpoint_url") or None,
        region_name=params.get("region") or None,
        aws_access_key_id=params.get("access_key") or None,
        aws_secret_access_key=params.get("secret_key") or None,
        aws_session_token=params.get("session_token") or None,
    )
    return EbsProvider(client, params["instance_id"], params["device"], waiter_delay=params["waiter_delay"])


def fail_snapshot(module, exc):
    """One readable failure for provider errors and the AWS errors beneath them."""
    import traceback

    if isinstance(exc, SnapshotError):
        result = {key: value for key, value in exc.result.items() if key != "diff" or module._diff}
        module.fail_json(msg=str(exc), **result)
    module.fail_json(msg=f"{type(exc).__name__}: {exc}", exception=traceback.format_exc())
