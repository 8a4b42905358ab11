# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup modules' shared options and their AnsibleModule wrapper.

boto3 is imported only when an S3 repository is used: importing it costs ~0.4 s, a tenth of a
small restore from a local repository.
"""

from __future__ import annotations

import sys
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mttr.recovery.plugins.module_utils.backup_postgres import PostgresTarget, load_psycopg
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    BackupError,
    LocalRepository,
    S3Repository,
)


def load_boto3():
    """(boto3, botocore.config, TransferConfig), or None with the import error's traceback."""
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
        from boto3.s3.transfer import TransferConfig
    except ImportError:
        return None, traceback.format_exc()
    return (boto3, botocore.config, TransferConfig), None


def botocore_errors():
    """botocore's error classes once it is loaded (an S3 error can only come from it after that), else ()."""
    botocore_exceptions = sys.modules.get("botocore.exceptions")
    if botocore_exceptions is None:
        return ()
    return (botocore_exceptions.BotoCoreError, botocore_exceptions.ClientError)


def backup_errors():
    """The errors a backup module reports as a failure: evaluated in ``except backup_errors()``, when raised."""
    return (BackupError, OSError, *botocore_errors())


def repository_spec():
    return {
        "type": "dict",
        "required": True,
        "options": {
            "type": {"type": "str", "required": True, "choices": ["local", "s3"]},
            "path": {"type": "path"},
            "bucket": {"type": "str"},
            "prefix": {"type": "str", "default": ""},
            "endpoint_url": {"type": "str"},
            "region": {"type": "str"},
            "access_key": {"type": "str", "no_log": True},
            "secret_key": {"type": "str", "no_log": True},
            "session_token": {"type": "str", "no_log": True},
            "multipart_chunk_mb": {"type": "int", "default": 16},
            "max_concurrency": {"type": "int", "default": 8},
        },
        "required_if": [("type", "local", ("path",)), ("type", "s3", ("bucket",))],
    }


def postgres_spec():
    return {
        "database": {"type": "str"},
        "login_host": {"type": "str", "default": "127.0.0.1"},
        "port": {"type": "int", "default": 5432},
        "login_user": {"type": "str"},
        "login_password": {"type": "str", "no_log": True},
        "maintenance_db": {"type": "str", "default": "postgres"},
        "pg_bin": {"type": "path"},
    }


def make_repository(options):
    """A repository from the ``repository`` option's values (also used by the backup lookup)."""
    if options.get("type") == "local":
        if not options.get("path"):
            raise BackupError("a local repository needs path")
        return LocalRepository(options["path"])
    if options.get("type") != "s3":
        raise BackupError(f"repository type must be local or s3, got {options.get('type')!r}")
    if not options.get("bucket"):
        raise BackupError("an s3 repository needs bucket")
    libraries, error = load_boto3()
    if libraries is None:
        raise BackupError(f"S3 repositories need boto3 (pip install boto3): {error.strip().splitlines()[-1]}")
    boto3, botocore_config, TransferConfig = libraries
    client = boto3.client(
        "s3",
        endpoint_url=options.get("endpoint_url") or None,
        region_name=options.get("region") or None,
        aws_access_key_id=options.get("access_key") or None,
        aws_secret_access_key=options.get("secret_key") or None,
        aws_session_token=options.get("session_token") or None,
        config=botocore_config.Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5),
    )
    chunk = max(5, int(options.get("multipart_chunk_mb") or 16)) * 1024 * 1024
    transfer = TransferConfig(
        multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=int(options.get("max_concurrency") or 8)
    )
    return S3Repository(client, options["bucket"], options.get("prefix") or "", transfer)


class BackupModule(AnsibleModule):
    """AnsibleModule with the repository and target factories and one way to fail on backup errors."""

    def __init__(self, argument_spec, **kwargs):
        spec = {"repository": repository_spec(), "kind": {"type": "str", "choices": ["files", "postgres"]}}
        spec.update(argument_spec)
        super().__init__(argument_spec=spec, **kwargs)

    def run(self, argv, env):
        """The process runner the engines use: AnsibleModule.run_command with extra environment."""
        if env:
            return self.run_command(argv, environ_update=env)
        return self.run_command(argv)

    def repository(self):
        if self.params["repository"]["type"] == "s3":
            libraries, error = load_boto3()
            if libraries is None:
                self.fail_json(msg=missing_required_lib("boto3"), exception=error)
        return make_repository(self.params["repository"])

    def postgres_target(self):
        if load_psycopg() is None:
            self.fail_json(msg=missing_required_lib("psycopg"))
        params = self.params
        if not params.get("database"):
            self.fail_json(msg="kind=postgres needs database: the database to back up or restore")
        return PostgresTarget(
            params["database"],
            host=params["login_host"],
            port=params["port"],
            user=params.get("login_user"),
            password=params.get("login_password"),
            maintenance_db=params["maintenance_db"],
            pg_bin=params.get("pg_bin"),
        )

    def fail_backup(self, exc, **result):
        """Fail with a readable message for backup errors and the S3 / database errors beneath them."""
        if isinstance(exc, BackupError):
            self.fail_json(msg=str(exc), **result)
        if isinstance(exc, botocore_errors()):
            self.fail_json(
                msg=f"S3 repository {self.params['repository'].get('bucket')}: {exc}",
                exception=traceback.format_exc(),
                **result,
            )
        self.fail_json(msg=f"{type(exc).__name__}: {exc}", exception=traceback.format_exc(), **result)
