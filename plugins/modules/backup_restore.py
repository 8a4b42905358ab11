#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_restore
short_description: Restore a verified backup safely, roll a restore back, or prune its safety copies
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - Selects a backup by id, the latest, or the latest created before a time, and refuses one whose
    manifest is missing or whose artifact does not match the manifest's size and sha256. The
    checksum is computed while the backup streams in, not by a second read. With a repository key
    the manifest's HMAC must verify too (see O(repository_key)).
  - Before anything is written, refuses a restore the disk has no room for (the files' unpacked size,
    or the database's size when it was backed up, against the free space of the filesystem it goes
    to; see O(check_free_space)). A disk that fills up anyway is reported as full, with the
    filesystem, what was needed and what was free; the target is left as it was.
  - C(files) extracts into a staging directory beside the target (refusing absolute paths, C(..),
    links leaving the tree and special files) and swaps it in with one atomic exchange; the previous
    tree is kept as the pre-restore safety copy.
  - C(postgres) restores with C(pg_restore -j) into a new staging database, then, in one
    transaction after terminating the target's sessions, renames the target to its safety copy and
    the staging database to the target.
  - An interrupted restore (the process killed at any point) leaves the target wholly old or wholly
    new; the next run finishes or discards it and says so in RV(recovered).
  - O(state=rolled_back) undoes the last restore of the target by putting its safety copy back; the
    undone state is kept too.
  - O(state=pruned) removes the target's safety copies (pre-restore and undone) beyond
    O(keep_safety_copies), keeping the copy the last restore made first, then the newest. Run it once
    a restore was validated; the M(mttr.recovery.backup_restore) role does. Restoring alone never
    removes a copy.
  - Restoring the backup the target already holds changes nothing unless O(force=true). That is
    proven from the data, never from the marker beside the directory or the database's comment
    alone. A directory must be untouched since that backup was restored into it (the metadata of
    every entry, change times included, as recorded then). A database must have the fingerprint
    (its schema and a hash of every table's rows) it had when that backup was restored into it, or
    the one the backup recorded of its source; the rows are read only when the schema matches.
extends_documentation_fragment:
  - mttr.recovery.backup
  - mttr.recovery.backup.database
  - mttr.recovery.postgres
options:
  kind:
    required: true
  state:
    description:
      - C(restored) restores a backup; C(rolled_back) undoes the last restore; C(pruned) removes the
        safety copies beyond O(keep_safety_copies).
    type: str
    choices: [restored, rolled_back, pruned]
    default: restored
  keep_safety_copies:
    description:
      - (O(state=pruned)) How many safety copies of the target to keep. The one the last restore made
        is kept first (O(state=rolled_back) needs it), then the newest. C(0) removes them all.
    type: int
    default: 1
  check_free_space:
    description:
      - Refuse a restore whose target filesystem has less free space than the manifest says it needs
        (for postgres, when the server's data directory or tablespace is on this host). Set to false
        when that estimate is known to be too high, e.g. a database with much bloat when it was backed up.
    type: bool
    default: true
  path:
    description: (files) The directory to restore. Required for O(kind=files).
    type: path
  backup:
    description: The backup id, or C(latest).
    type: str
    default: latest
  latest_before:
    description: Restore the latest backup created strictly before this time (ISO 8601, UTC when no offset is given).
    type: str
  source_name:
    description: Only consider backups of this source (see M(mttr.recovery.backup)).
    type: str
  force:
    description: Restore even when the target already holds the selected backup.
    type: bool
    default: false
  jobs:
    description: (postgres) Parallel jobs of C(pg_restore).
    type: int
    default: 2
  tmp_dir:
    description: (postgres, S3) Where the dump is downloaded. Defaults to the system's temporary directory.
    type: path
attributes:
  check_mode:
    support: full
    description: Reports which backup would be restored and what would be replaced; reads manifests only.
  diff_mode:
    support: full
    description: Before and after name the backup the target holds, or (O(state=pruned)) its safety copies.
"""

EXAMPLES = r"""
- name: Restore the orders database from the latest backup in S3
  mttr.recovery.backup_restore:
    kind: postgres
    database: orders
    login_user: mttr
    login_password: "{{ pg_password }}"
    pg_bin: /usr/lib/postgresql/15/bin
    jobs: 4
    repository:
      type: s3
      bucket: prod-mttr-backups
  register: __restore

- name: Restore uploads as they were before the bad deploy
  mttr.recovery.backup_restore:
    kind: files
    path: /srv/checkout/shared/uploads
    latest_before: "2026-11-23T09:00:00Z"
    repository:
      type: local
      path: /var/backups/mttr

- name: Undo that restore
  mttr.recovery.backup_restore:
    kind: files
    path: /srv/checkout/shared/uploads
    state: rolled_back
    repository:
      type: local
      path: /var/backups/mttr

- name: Once the restore validated, keep only the safety copy it made
  mttr.recovery.backup_restore:
    kind: files
    path: /srv/checkout/shared/uploads
    state: pruned
    keep_safety_copies: 1
    repository:
      type: local
      path: /var/backups/mttr
"""

RETURN = r"""
backup_id:
  description: The backup restored (or that would be).
  returned: when O(state=restored)
  type: str
  sample: 20261123T120102Z-postgres-3f9a01
backup_created:
  description: When that backup was taken.
  returned: when O(state=restored)
  type: str
target:
  description: The directory or database restored.
  returned: always
  type: str
safety_copy:
  description:
    - Where the pre-restore state is kept (a directory beside the target, or a database name).
    - Null when there was nothing to keep.
  returned: when O(state=restored)
  type: str
  sample: orders__pre_restore_20261123120301
undone_copy:
  description: Where the undone restored state is kept after a roll back.
  returned: when O(state=rolled_back)
  type: str
bytes:
  description: Bytes of backup streamed and verified.
  returned: when O(state=restored)
  type: int
verification:
  description: C(sha256) (verified while streaming), C(manifest) (check mode) or C(skipped) (nothing to do).
  returned: when O(state=restored)
  type: str
duration_s:
  description: Seconds the restore (or, in check mode, the plan) took.
  returned: when O(state=restored)
  type: float
space:
  description:
    - The free space checked before the restore; null when nothing was to be restored or O(check_free_space=false).
  returned: when O(state=restored)
  type: dict
  contains:
    checked:
      description: Each filesystem checked - its mount point, type, free and needed bytes.
      type: list
      elements: dict
    not_checked:
      description: Why the space could not be checked (e.g. a remote database server), or null.
      type: str
recovered:
  description:
    - What was done about an earlier, interrupted restore of the same target (leftover staging
      directories or databases, work directories of killed restores) or an interrupted prune.
  returned: when something was restored, rolled back or pruned
  type: list
  elements: str
removed:
  description: The safety copies removed (or, in check mode, that would be), paths or database names.
  returned: when O(state=pruned)
  type: list
  elements: str
kept:
  description: The safety copies kept.
  returned: when O(state=pruned)
  type: list
  elements: str
"""

from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import (
    BackupModule,
    backup_errors,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import (
    prune_safety_copies,
    restore,
    roll_back,
)


def main():
    spec = {
        "state": {"type": "str", "choices": ["restored", "rolled_back", "pruned"], "default": "restored"},
        "keep_safety_copies": {"type": "int", "default": 1},
        "check_free_space": {"type": "bool", "default": True},
        "path": {"type": "path"},
        "backup": {"type": "str", "default": "latest"},
        "latest_before": {"type": "str"},
        "source_name": {"type": "str"},
        "force": {"type": "bool", "default": False},
        "jobs": {"type": "int", "default": 2},
        "tmp_dir": {"type": "path"},
    }
    module = BackupModule(
        argument_spec=spec,
        target=True,
        supports_check_mode=True,
        mutually_exclusive=[("backup", "latest_before")],
    )
    params = module.params
    if params["jobs"] < 1:
        module.fail_json(msg=f"jobs must be at least 1, got {params['jobs']}")
    if params["keep_safety_copies"] < 0:
        module.fail_json(msg=f"keep_safety_copies must be 0 or more, got {params['keep_safety_copies']}")
    backup = params["backup"]
    if params["latest_before"] and backup == "latest":
        backup = None
    repository = None
    try:
        target = module.postgres_target() if params["kind"] == "postgres" else None
        if params["state"] == "rolled_back":
            result = roll_back(params["kind"], check_mode=module.check_mode, path=params["path"], target=target)
        elif params["state"] == "pruned":
            result = prune_safety_copies(
                params["kind"],
                params["keep_safety_copies"],
                check_mode=module.check_mode,
                path=params["path"],
                target=target,
            )
        else:
            repository = module.repository()
            result = restore(
                repository,
                params["kind"],
                check_mode=module.check_mode,
                run=module.run,
                backup=backup,
                latest_before=params["latest_before"],
                source_name=params["source_name"],
                path=params["path"],
                target=target,
                force=params["force"],
                jobs=params["jobs"],
                tmp_dir=params["tmp_dir"],
                check_free_space=params["check_free_space"],
            )
    except backup_errors() as exc:
        module.fail_backup(exc)
    module.exit_backup(result, repository)


if __name__ == "__main__":
    main()
