#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_info
short_description: List the backups in a repository and verify them
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - Lists the backups of a local or S3 repository, oldest first, with their manifests.
  - With O(verify=full), re-hashes every artifact against its manifest and marks each backup
    C(verified) or C(corrupt). Backups without a readable manifest are listed as C(incomplete); with
    a repository key, those whose HMAC does not verify (or that have none) as C(unauthenticated).
  - Given a target (O(path), or O(database) with its connection options), also lists the safety
    copies kept beside it by M(mttr.recovery.backup_restore) (pre-restore and undone copies).
extends_documentation_fragment:
  - mttr.recovery.backup
  - mttr.recovery.backup.database
  - mttr.recovery.postgres
options:
  path:
    description: (files) A restore target whose safety copies to list.
    type: path
  database:
    description: (postgres) A database whose safety copies to list.
    type: str
  source_name:
    description: Only backups of this source.
    type: str
  verify:
    description: C(manifest) reads only the manifests; C(full) also re-hashes every artifact.
    type: str
    choices: [manifest, full]
    default: manifest
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Read-only.
"""

EXAMPLES = r"""
- name: Verify every backup of the orders database
  mttr.recovery.backup_info:
    kind: postgres
    source_name: orders
    verify: full
    repository:
      type: s3
      bucket: prod-mttr-backups
  register: __backups

- name: Fail when the latest backup is not sound
  ansible.builtin.assert:
    that: (__backups.backups | selectattr('status', 'eq', 'verified') | list | length) > 0
"""

RETURN = r"""
backups:
  description: The backups, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Backup id.
      type: str
    status:
      description: C(complete) (manifest read), C(verified), C(corrupt), C(incomplete) or C(unauthenticated).
      type: str
    error:
      description: Why the backup is corrupt, incomplete or unauthenticated.
      type: str
    authenticated:
      description: Whether its manifest's HMAC was verified with the repository key.
      type: bool
safety_copies:
  description: The target's safety copies, oldest first.
  returned: when O(path) or O(database) is given
  type: list
  elements: dict
  contains:
    name:
      description: The directory's or database's name.
      type: str
    path:
      description: (files) Where the copy is.
      type: str
    database:
      description: (postgres) The copy's database name.
      type: str
    kind:
      description: C(pre_restore) (the state before a restore) or C(undone) (a restore rolled back).
      type: str
    created:
      description: When the copy was made (UTC, to the second).
      type: str
    current:
      description: Whether it is the copy the target's last restore made (what a roll back puts back).
      type: bool
latest:
  description: Id of the newest complete backup, or null.
  returned: always
  type: str
count:
  description: Number of backups listed.
  returned: always
  type: int
"""

from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import (
    BackupModule,
    backup_errors,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import backup_info


def main():
    spec = {
        "source_name": {"type": "str"},
        "verify": {"type": "str", "choices": ["manifest", "full"], "default": "manifest"},
        "path": {"type": "path"},
    }
    module = BackupModule(argument_spec=spec, supports_check_mode=True, mutually_exclusive=[("path", "database")])
    params = module.params
    try:
        target = module.postgres_target() if params["database"] else None
        repository = module.repository()
        result = backup_info(
            repository,
            kind=params["kind"],
            source_name=params["source_name"],
            verify=params["verify"],
            path=params["path"],
            target=target,
        )
    except backup_errors() as exc:
        module.fail_backup(exc)
    module.exit_backup(result, repository)


if __name__ == "__main__":
    main()
