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

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import make_repository
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import BackupError, parse_time


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        try:
            repository = make_repository(self.get_option("repository"))
            good, _bad = repository.catalog(kind=self.get_option("kind"), source=self.get_option("source_name"))
            before = self.get_option("latest_before")
            if before:
                limit = parse_time(before)
                good = [m for m in good if parse_time(m["created"]) < limit]
            for manifest in reversed(good):
                if self.get_option("verify") == "full":
                    try:
                        repository.verify(manifest["id"], manifest)
                    except BackupError:
                        continue
                return [manifest["id"]]
        except BackupError as exc:
            raise AnsibleLookupError(str(exc)) from None
        except Exception as exc:
            raise AnsibleLookupError(f"cannot read the backup repository: {exc}") from None
        raise AnsibleLookupError(
            f"no {'verified' if self.get_option('verify') == 'full' else 'complete'} backup "
            f"matches in {repository.describe()}"
        )
