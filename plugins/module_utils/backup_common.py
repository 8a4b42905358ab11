# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup modules' shared options and their AnsibleModule wrapper.

boto3 is imported only when an S3 repository is used: importing it costs ~0.4 s, a tenth of a
small restore from a local repository.
"""

from __future__ import annotations

import os

from ansible_collections.mttr.recovery.plugins.module_utils.aws import (
    AwsUnavailable,
    aws_argument_spec,
    botocore_errors,
    client,
    load_boto3,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_postgres import PostgresTarget
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    MIN_KEY_BYTES,
    BackupError,
    LocalRepository,
    S3Repository,
)
from ansible_collections.mttr.recovery.plugins.module_utils.module import MttrModule
from ansible_collections.mttr.recovery.plugins.module_utils.pg import load_psycopg, postgres_argument_spec

KEY_ENV = "MTTR_BACKUP_KEY"


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
            **aws_argument_spec(),
            "multipart_chunk_mb": {"type": "int", "default": 16},
            "max_concurrency": {"type": "int", "default": 8},
        },
        "required_if": [("type", "local", ("path",)), ("type", "s3", ("bucket",))],
    }


def key_spec():
    """The repository key options: the key, a file holding it, and whether unauthenticated manifests may be used."""
    return {
        "repository_key": {"type": "str", "no_log": True},
        "repository_key_file": {"type": "path", "no_log": False},
        "allow_unauthenticated": {"type": "bool", "default": False},
    }


def resolve_key(key=None, key_file=None, environ=None):
    """The repository key as bytes, or None: ``key``, else the file's first line, else MTTR_BACKUP_KEY.

    The key is never part of a message.
    """
    environ = os.environ if environ is None else environ
    if key_file:
        try:
            with open(key_file, "rb") as handle:
                data = handle.read().strip()
            key = data.splitlines()[0] if data else b""
        except OSError as exc:
            raise BackupError(f"cannot read repository_key_file {key_file}: {exc.strerror}") from None
        if not key:
            raise BackupError(f"repository_key_file {key_file} is empty: put the repository key on its first line")
    elif not key:
        key = environ.get(KEY_ENV) or None
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    key = key.strip()
    if len(key) < MIN_KEY_BYTES:
        raise BackupError(
            f"the repository key is too short: use at least {MIN_KEY_BYTES} bytes "
            "(e.g. the output of openssl rand -hex 32)"
        )
    return key


def postgres_spec():
    return {
        "database": {"type": "str"},
        "login_host": {"type": "str", "default": "127.0.0.1"},
        "port": {"type": "int", "default": 5432},
        **postgres_argument_spec(),
        "maintenance_db": {"type": "str", "default": "postgres"},
        "pg_bin": {"type": "path"},
    }


def make_repository(options, key=None, allow_unauthenticated=False):
    """A repository from the ``repository`` option's values (also used by the backup lookup).

    ``key`` (bytes) signs the manifests it writes and authenticates those it reads.
    """
    return _make_repository(options).use_key(key, allow_unauthenticated)


def _make_repository(options):
    if options.get("type") == "local":
        if not options.get("path"):
            raise BackupError("a local repository needs path")
        return LocalRepository(options["path"])
    if options.get("type") != "s3":
        raise BackupError(f"repository type must be local or s3, got {options.get('type')!r}")
    if not options.get("bucket"):
        raise BackupError("an s3 repository needs bucket")
    try:
        s3 = client("s3", options)
    except AwsUnavailable as exc:
        missing = exc.traceback.strip().splitlines()[-1]
        raise BackupError(f"S3 repositories need boto3 (pip install boto3): {missing}") from None
    from boto3.s3.transfer import TransferConfig

    chunk = max(5, int(options.get("multipart_chunk_mb") or 16)) * 1024 * 1024
    transfer = TransferConfig(
        multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=int(options.get("max_concurrency") or 8)
    )
    return S3Repository(s3, options["bucket"], options.get("prefix") or "", transfer)


class BackupModule(MttrModule):
    """The module base with the backup options, the repository and target factories, and backup failures."""

    def __init__(self, argument_spec, target=False, **kwargs):
        """``target``: the module acts on one target of a ``kind`` (a directory ``path`` or a ``database``),
        which it must name."""
        spec = {"repository": repository_spec(), "kind": {"type": "str", "choices": ["files", "postgres"]}}
        spec.update(key_spec())
        spec.update(postgres_spec())
        spec.update(argument_spec)
        required_if = list(kwargs.pop("required_if", []))
        if target:
            spec["kind"] = dict(spec["kind"], required=True)
            required_if += [("kind", "files", ("path",)), ("kind", "postgres", ("database",))]
        mutually_exclusive = [*kwargs.pop("mutually_exclusive", []), ("repository_key", "repository_key_file")]
        super().__init__(argument_spec=spec, mutually_exclusive=mutually_exclusive, required_if=required_if, **kwargs)

    def repository_key(self):
        """The key from repository_key, repository_key_file or MTTR_BACKUP_KEY, kept out of every output."""
        try:
            key = resolve_key(self.params["repository_key"], self.params["repository_key_file"])
        except BackupError as exc:
            self.fail_json(msg=str(exc))
        if key is not None:
            # the file's or the environment's key is masked like an option marked no_log
            self.no_log_values.add(key.decode("utf-8", "replace"))
        return key

    def repository(self):
        if self.params["repository"]["type"] == "s3" and load_boto3()[0] is None:
            self.require("boto3")
        return make_repository(self.params["repository"], self.repository_key(), self.params["allow_unauthenticated"])

    def exit_backup(self, result, repository=None):
        """exit_json with the warnings of the engine and of the repository (manifests used unauthenticated)."""
        warnings = list(result.pop("warnings", None) or [])
        if repository is not None:
            warnings += [w for w in repository.warnings if w not in warnings]
        for warning in warnings:
            self.warn(warning)
        self.finish(result)

    def postgres_target(self):
        if load_psycopg() is None:
            self.require("psycopg")
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
        """Fail with a readable message for backup errors and the S3 / database errors beneath them.

        What the engine had already changed when it failed (the exception's ``result``) is reported:
        ``changed`` says the truth on failures too.
        """
        if isinstance(exc, botocore_errors()):
            exc = BackupError(
                f"S3 repository {self.params['repository'].get('bucket')}: {exc}", getattr(exc, "result", None)
            )
        self.fail_from(exc, readable=(BackupError,), **result)
