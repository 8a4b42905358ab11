#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot
short_description: Take or delete snapshots of a release, an LVM volume or an EBS volume (and list them)
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - O(state=present) takes a snapshot. For C(release), it marks the current release as known good
    (releases are snapshots already), so M(mttr.recovery.snapshot_rollback) can return to it with
    C(to=last_marked). For C(lvm), C(lvcreate -s). For C(ebs), a snapshot of the instance's volume
    at O(device), tagged so it can be found again, waited until completed.
  - O(state=absent) deletes the snapshot (or release) O(name). The current release cannot be deleted.
extends_documentation_fragment:
  - mttr.recovery.snapshot
  - mttr.recovery.aws
options:
  state:
    description: What to do.
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Name of the snapshot to take or delete (required for O(state=absent)).
    type: str
attributes:
  check_mode:
    support: full
    description: Reports what would be taken or deleted.
  diff_mode:
    support: none
    description: Snapshots add or remove whole objects.
"""

EXAMPLES = r"""
- name: Mark the release that just passed validation as known good
  mttr.recovery.snapshot:
    provider: release
    releases_dir: /srv/checkout/releases
    current_link: /srv/checkout/current

- name: Snapshot the data volume before a risky change
  mttr.recovery.snapshot:
    provider: ebs
    instance_id: i-0123456789abcdef0
    device: /dev/xvdf
    name: before-migration-42
"""

RETURN = r"""
snapshot:
  description: The snapshot taken or marked (its C(id)).
  returned: when O(state=present)
  type: dict
  sample: {"id": "snap-0123456789abcdef0", "volume_id": "vol-0123456789abcdef0"}
snapshots:
  description: The provider's snapshots (or releases), oldest first.
  returned: always
  type: list
  elements: dict
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
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        name={"type": "str"},
    )
    module = MttrModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_if=[*PROVIDER_REQUIRED_IF, ("state", "absent", ("name",))],
    )
    state = module.params["state"]
    try:
        provider = build_provider(module)
        if state == "present":
            result = provider.take(module.params["name"], check_mode=module.check_mode)
        else:
            result = provider.delete(module.params["name"], check_mode=module.check_mode)
        result["snapshots"] = provider.list()
    except snapshot_errors() as exc:
        fail_snapshot(module, exc)
    module.finish(result)


if __name__ == "__main__":
    main()
