# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: backup
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: Find a backup id - the latest complete or verified one, or the latest before a time
description:
  - Looks in a backup repository (the same O(repository) dictionary the backup modules take) and
    returns the id of the newest complete backup matching O(kind) and O(source_name), optionally
    created before O(latest_before).
  - With O(verify=full), backups are re-hashed newest first and the newest that verifies is returned.
  - With a repository key, only backups whose manifest's HMAC verifies are considered; without one,
    signed backups cannot be authenticated and are skipped unless O(allow_unauthenticated=true).
  - Runs on the controller, so the repository must be reachable from it.
options:
  repository:
    description: The repository, as for M(mttr.recovery.backup) (C(type), C(path) or C(bucket), ...).
    type: dict
    required: true
  kind:
    description: Only backups of this kind.
    type: str
    choices: [files, postgres]
  source_name:
    description: Only backups of this source.
    type: str
  latest_before:
    description: Only backups created strictly before this time (ISO 8601).
    type: str
  verify:
    description: C(manifest) trusts complete manifests; C(full) re-hashes the artifacts.
    type: str
    choices: [manifest, full]
    default: manifest
  repository_key:
    description:
      - The repository key that authenticates manifests (see M(mttr.recovery.backup_restore)). Never shown.
    type: str
    env:
      - name: MTTR_BACKUP_KEY
  repository_key_file:
    description:
      - A file whose first line is the repository key; takes precedence over E(MTTR_BACKUP_KEY). Empty for none.
    type: str
  allow_unauthenticated:
    description: Consider manifests that cannot be authenticated (signed ones without a key, unsigned ones with a key).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Restore the newest backup that verifies
  mttr.recovery.backup_restore:
    kind: postgres
    database: orders
    backup: "{{ lookup('mttr.recovery.backup', repository=repo, kind='postgres', verify='full') }}"
    repository: "{{ repo }}"
"""

RETURN = r"""
_raw:
  description: The backup id.
  type: list
  elements: str
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import make_repository, resolve_key
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import find_backup
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import BackupError

display = Display()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        try:
            # the option already fell back to MTTR_BACKUP_KEY; the file, when given, comes first
            key_file = os.path.expanduser(self.get_option("repository_key_file") or "") or None
            key = resolve_key(self.get_option("repository_key"), key_file, environ={})
            repository = make_repository(self.get_option("repository"), key, self.get_option("allow_unauthenticated"))
            found = find_backup(
                repository,
                kind=self.get_option("kind"),
                source_name=self.get_option("source_name"),
                latest_before=self.get_option("latest_before"),
                verify=self.get_option("verify"),
            )
        except BackupError as exc:
            raise AnsibleLookupError(str(exc)) from None
        except Exception as exc:
            raise AnsibleLookupError(f"cannot read the backup repository: {exc}") from None
        for warning in repository.warnings:
            display.warning(warning)
        return [found]
