#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot_rollback
short_description: Roll back to a previous release or snapshot, keeping what it replaces
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - C(release) - points C(current) at another release with one atomic rename (never a moment
    without C(current)), then runs O(restart_command). O(to=previous) is the release that was
    current before the last deploy (from the switch history, else the next older version), so
    asking for it again after a rollback changes nothing;
    O(to=last_marked) the last release marked known good by M(mttr.recovery.snapshot).
  - C(lvm) - snapshots the origin's current state first, then merges the chosen snapshot back
    (unmounting, reactivating and remounting around the merge).
  - C(ebs) - creates a volume from the chosen snapshot, stops the instance, swaps the volumes at the
    same device, starts the instance again; the replaced volume is detached and kept.
  - Rolling back to what is already active reports no change.
extends_documentation_fragment:
  - mttr.recovery.snapshot
  - mttr.recovery.aws
options:
  to:
    description:
      - A release version or snapshot id, C(previous) (release; for lvm and ebs the same as C(latest)),
        C(latest) (the newest snapshot) or C(last_marked) (release).
    type: str
    default: previous
  latest_before:
    description: (lvm, ebs) The newest snapshot taken before this time (ISO 8601).
    type: str
  restart_command:
    description: (release) Command run after the switch, as a list of arguments (no shell).
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Reports the plan (what would become active, what would be replaced) and changes nothing.
  diff_mode:
    support: full
    description: Before and after name the active release, volume or snapshot.
"""

EXAMPLES = r"""
- name: Roll the app back to the release before the bad deploy and restart it
  mttr.recovery.snapshot_rollback:
    provider: release
    releases_dir: /srv/checkout/releases
    current_link: /srv/checkout/current
    to: previous
    restart_command: [systemctl, restart, checkout]

- name: Put the data volume back as it was before 09:00
  mttr.recovery.snapshot_rollback:
    provider: ebs
    instance_id: i-0123456789abcdef0
    device: /dev/xvdf
    to: latest
    latest_before: "2026-11-23T09:00:00Z"
"""

RETURN = r"""
current:
  description: The release (or new volume) active after the rollback.
  returned: when it changed, or for C(release)
  type: str
  sample: 1.0.0
previous:
  description: (release) The release that was active before.
  returned: for C(release)
  type: str
  sample: 1.0.1
replaced:
  description:
    - What the rollback replaced and kept.
    - A release directory, a pre-rollback LVM snapshot, or a detached EBS volume.
  returned: when something changed
  type: str
snapshot_id:
  description: (lvm, ebs) The snapshot rolled back to.
  returned: for C(lvm) and C(ebs)
  type: str
restarted:
  description: Whether the restart command ran (release) or the instance was restarted (ebs).
  returned: when something changed
  type: bool
plan:
  description: (lvm) The commands run (or that would run).
  returned: for C(lvm)
  type: list
  elements: str
"""

from ansible_collections.mttr.recovery.plugins.module_utils.module import MttrModule
from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_common import (
    PROVIDER_REQUIRED_IF,
    build_provider,
    fail_snapshot,
    provider_spec,
    snapshot_errors,
)


def main():
    spec = provider_spec()
    spec.update(
        to={"type": "str", "default": "previous"},
        latest_before={"type": "str"},
        restart_command={"type": "list", "elements": "str"},
    )
    module = MttrModule(argument_spec=spec, supports_check_mode=True, required_if=PROVIDER_REQUIRED_IF)
    params = module.params
    try:
        provider = build_provider(module, restart_command=params["restart_command"])
        if params["provider"] == "release":
            result = provider.rollback(params["to"], check_mode=module.check_mode)
        else:
            result = provider.rollback(
                params["to"], latest_before=params["latest_before"], check_mode=module.check_mode
            )
    except snapshot_errors() as exc:
        fail_snapshot(module, exc)
    module.finish(result)


if __name__ == "__main__":
    main()
