#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup
short_description: Take a backup of a directory or a PostgreSQL database, with a manifest
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - Takes a backup into a local directory or an S3 bucket and writes, last, a manifest with its id,
    creation time, kind, source, size, the sha256 of every artifact, tool versions and tags. A backup
    without a manifest is incomplete and never restored.
  - C(files) archives a directory tree as one tar stream (gzip level 1 by default), written to the
    repository as it is produced; C(postgres) runs C(pg_dump -Fc).
  - Retention deletes the oldest backups of the same kind and source beyond O(keep_count) or older
    than O(keep_days), never the one just taken.
  - Every run takes a new backup, so it always reports a change (in check mode too, with the plan).
  - C(files) records the unpacked size of the archive, C(postgres) the database's size and a
    fingerprint of its data (taken in the same snapshot as the dump). A restore checks free space
    with the first, and leaves alone a database that already holds the data with the second.
  - With a repository key (O(repository_key)), the manifest carries an HMAC-SHA256 over its whole
    content, so a reader with the key can tell it was written by a key holder and not changed since.
extends_documentation_fragment:
  - mttr.recovery.backup
  - mttr.recovery.backup.database
  - mttr.recovery.postgres
options:
  kind:
    required: true
  path:
    description: (files) The directory to back up. Required for O(kind=files).
    type: path
  source_name:
    description:
      - Name of what is backed up, used to find its backups later.
      - Defaults to the directory's or the database's name.
    type: str
  tags:
    description: Free-form tags stored in the manifest.
    type: dict
    default: {}
  compression:
    description: (files) Compression of the tar archive.
    type: str
    choices: [gzip, none]
    default: gzip
  keep_count:
    description: Keep at most this many backups of this kind and source.
    type: int
  keep_days:
    description: Delete backups of this kind and source older than this many days.
    type: int
  tmp_dir:
    description: (postgres) Where the dump is written before it is stored. Defaults to the system's temporary directory.
    type: path
attributes:
  check_mode:
    support: full
    description: Reports the backup that would be taken and the backups retention would delete.
  diff_mode:
    support: none
    description: A backup adds to the repository; there is nothing to compare.
"""

EXAMPLES = r"""
- name: Back up the orders database to S3, keeping the last 14
  mttr.recovery.backup:
    kind: postgres
    database: orders
    login_user: mttr
    login_password: "{{ pg_password }}"
    port: 5432
    pg_bin: /usr/lib/postgresql/15/bin
    repository:
      type: s3
      bucket: prod-mttr-backups
      prefix: orders
    keep_count: 14
    tags:
      reason: nightly

- name: Back up the app's uploads to a local repository
  mttr.recovery.backup:
    kind: files
    path: /srv/checkout/shared/uploads
    repository:
      type: local
      path: /var/backups/mttr
"""

RETURN = r"""
backup:
  description: The manifest of the backup taken (in check mode, the plan).
  returned: always
  type: dict
  sample:
    id: 20261123T120102Z-postgres-3f9a01
    created: "2026-11-23T12:01:02.123456Z"
    kind: postgres
    source: {name: orders, database: orders, host: db1}
    size: 104857600
    artifacts:
      - {name: orders.dump, size: 104857600, sha256: "9f86d0...", format: custom, database_size: 524288000,
         fingerprint: 0f4fd598e62db45f401e825ebeb755cb}
    authentication: {alg: hmac-sha256, key_id: 3a7bd3e2360a3d29, hmac: "5e8848..."}
pruned:
  description: Ids of the backups retention deleted (or would delete).
  returned: always
  type: list
  elements: str
duration_s:
  description: Seconds the backup took.
  returned: when a backup was taken
  type: float
recovered:
  description: Work directories of killed backups and restores that were removed (postgres).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import (
    BackupModule,
    backup_errors,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import take_backup


def main():
    spec = {
        "path": {"type": "path"},
        "source_name": {"type": "str"},
        "tags": {"type": "dict", "default": {}},
        "compression": {"type": "str", "choices": ["gzip", "none"], "default": "gzip"},
        "keep_count": {"type": "int"},
        "keep_days": {"type": "int"},
        "tmp_dir": {"type": "path"},
    }
    module = BackupModule(
        argument_spec=spec,
        target=True,
        supports_check_mode=True,
    )
    params = module.params
    for key in ("keep_count", "keep_days"):
        if params[key] is not None and params[key] < 1:
            module.fail_json(msg=f"{key} must be at least 1, got {params[key]}")
    try:
        target = module.postgres_target() if params["kind"] == "postgres" else None
        result = take_backup(
            module.repository(),
            params["kind"],
            check_mode=module.check_mode,
            run=module.run,
            tags=params["tags"],
            source_name=params["source_name"],
            path=params["path"],
            compression=params["compression"],
            target=target,
            tmp_dir=params["tmp_dir"],
            keep_count=params["keep_count"],
            keep_days=params["keep_days"],
        )
    except backup_errors() as exc:
        module.fail_backup(exc)
    module.exit_backup(result)


if __name__ == "__main__":
    main()
