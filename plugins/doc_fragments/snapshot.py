# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  provider:
    description:
      - C(release) - application releases as C(releases/<version>/) directories and a C(current) symlink.
      - C(lvm) - an LVM logical volume, snapshotted with C(lvcreate -s) and rolled back by merge.
      - C(ebs) - an EC2 instance's EBS volume, through boto3.
    type: str
    required: true
    choices: [release, lvm, ebs]
  releases_dir:
    description: (release) The directory holding one subdirectory per release.
    type: path
  current_link:
    description: (release) The C(current) symlink.
    type: path
  vg:
    description: (lvm) Volume group.
    type: str
  lv:
    description: (lvm) Logical volume (the origin).
    type: str
  size:
    description: (lvm) Copy-on-write space of a new snapshot.
    type: str
    default: 1G
  mountpoint:
    description: (lvm) Where the origin is mounted; it is unmounted and remounted around a merge.
    type: path
  instance_id:
    description: (ebs) The instance.
    type: str
  device:
    description: (ebs) The device name of the volume, e.g. C(/dev/xvdf).
    type: str
  waiter_delay:
    description: (ebs) Seconds between polls of the EC2 waiters.
    type: int
    default: 2
notes:
  - The AWS options (M(mttr.recovery.aws) fragment) are for the C(ebs) provider.
requirements:
  - lvm2 and a kernel with device-mapper, for the lvm provider
"""
