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
    C(verified) or C(corrupt). Backups without a readable manifest are listed as C(incomplete).
extends_documentation_fragment:
  - mttr.recovery.backup
options:
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
      description: C(complete) (manifest read), C(verified), C(corrupt) or C(incomplete).
      type: str
    error:
      description: Why the backup is corrupt or incomplete.
      type: str
latest:
  description: Id of the newest complete backup, or null.
  returned: always
  type: str
count:
  description: Number of backups listed.
  returned: always
  type: int
"""

from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import BackupModule, backup_errors
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import backup_info


def main():
    module = BackupModule(
        argument_spec={
            "source_name": {"type": "str"},
            "verify": {"type": "str", "choices": ["manifest", "full"], "default": "manifest"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = backup_info(
            module.repository(), kind=params["kind"], source_name=params["source_name"], verify=params["verify"]
        )
    except backup_errors() as exc:
        module.fail_backup(exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
