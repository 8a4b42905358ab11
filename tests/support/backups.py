"""Helpers for the backup engine tests: raw access to stored objects, manifests, directory trees, a small disk."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    FORMAT,
    LocalRepository,
    new_backup_id,
    utcnow,
)

# ----------------------------------------------------------------------------- raw access to stored objects


def put_raw(repository, backup_id: str, name: str, data: bytes) -> None:
    """Store bytes as they are (no manifest, no hashing): to damage or craft backups."""
    if isinstance(repository, LocalRepository):
        path = Path(repository.root, backup_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        repository.client.put_object(Bucket=repository.bucket, Key=repository._key(backup_id, name), Body=data)


def remove_raw(repository, backup_id: str, name: str) -> None:
    if isinstance(repository, LocalRepository):
        os.unlink(repository.artifact_path(backup_id, name))
    else:
        repository.client.delete_object(Bucket=repository.bucket, Key=repository._key(backup_id, name))


def flip_byte(repository, backup_id: str, name: str, offset: int | None = None) -> None:
    """Invert one byte (the middle one by default) of a stored object."""
    data = bytearray(repository.read_bytes(backup_id, name))
    index = len(data) // 2 if offset is None else offset
    data[index] ^= 0xFF
    put_raw(repository, backup_id, name, bytes(data))


def truncate(repository, backup_id: str, name: str, keep: float = 0.6) -> None:
    data = repository.read_bytes(backup_id, name)
    put_raw(repository, backup_id, name, data[: int(len(data) * keep)])


def manifest_for(backup_id: str, kind: str, artifacts: list, created=None, source: str = "app", **extra) -> dict:
    """A manifest in the format take_backup writes, with a chosen creation time."""
    created = created or utcnow()
    manifest = {
        "format": FORMAT,
        "id": backup_id,
        "created": created.isoformat().replace("+00:00", "Z"),
        "kind": kind,
        "source": {"name": source, "host": "test", "path": "/nowhere"},
        "artifacts": artifacts,
        "size": sum(a["size"] for a in artifacts),
        "tools": {},
        "tags": {},
    }
    manifest.update(extra)
    return manifest


def store_backup(repository, kind: str, artifacts: dict, created=None, source: str = "app", **extra) -> dict:
    """Write ``{name: bytes}`` artifacts and a correct manifest; return the manifest."""
    created = created or utcnow()
    backup_id = new_backup_id(kind, created)
    entries = []
    for name, data in artifacts.items():
        put_raw(repository, backup_id, name, data)
        entries.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra})
    manifest = manifest_for(backup_id, kind, entries, created=created, source=source)
    repository.write_manifest(backup_id, manifest)
    return manifest


def tar_gz(members) -> bytes:
    """A tar.gz built with tarfile directly from ``(TarInfo, bytes or None)`` pairs: for unsafe archives."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes | None = None, mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.mtime = int(time.time())
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    if kind == tarfile.REGTYPE and data is None:
        data = b""
    return info, data


# ----------------------------------------------------------------------------- directory trees


def build_tree(root, variant: str) -> Path:
    """A small tree with nested dirs, unusual modes, symlinks (file, dir, dangling) and a hard link.

    ``variant`` ("old" or "new") changes contents and names, so a restore must add, change and remove.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "conf").mkdir()
    (root / "conf" / "app.ini").write_text(f"[app]\nvariant = {variant}\n")
    (root / "data" / "deep" / "er").mkdir(parents=True)
    for index in range(20):
        (root / "data" / f"row-{index:02d}.txt").write_text(f"{variant} row {index}\n" * (index + 1))
    (root / "data" / "deep" / "er" / "blob.bin").write_bytes(hashlib.sha256(variant.encode()).digest() * 4096)
    (root / f"only-in-{variant}.txt").write_text(variant)
    (root / "empty-dir").mkdir()
    secret = root / "private"
    secret.mkdir()
    (secret / "key.pem").write_text(f"{variant} key\n")
    (secret / "key.pem").chmod(0o600)
    (root / "bin").mkdir()
    (root / "bin" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "bin" / "run.sh").chmod(0o755)
    (root / "shared").mkdir()
    (root / "shared" / "group.txt").write_text("group writable\n")
    (root / "shared" / "group.txt").chmod(0o664)
    (root / "shared").chmod(0o2775)
    (root / "readonly.txt").write_text("read only\n")
    (root / "readonly.txt").chmod(0o444)
    (root / "current.ini").symlink_to("conf/app.ini")
    (root / "data-link").symlink_to("data/deep")
    (root / "dangling").symlink_to("not-there")
    os.link(root / "conf" / "app.ini", root / "conf" / "app.ini.hardlink")
    secret.chmod(0o700)
    (root / "data" / "deep").chmod(0o750)
    return root


def build_big_tree(root, variant: str, small: int, big: int, big_mb: int) -> Path:
    """Many small files plus a few big incompressible ones (for the kill tests)."""
    root = Path(root)
    seed = hashlib.sha256(variant.encode()).digest()
    for index in range(small):
        directory = root / f"d{index // 100:03d}"
        if index % 100 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{index:05d}.txt").write_bytes(seed + f" {variant} {index}\n".encode() * 8)
    blobs = root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    for index in range(big):
        (blobs / f"big-{index}.bin").write_bytes(os.urandom(big_mb * 1024 * 1024))
    (root / "marker.txt").write_text(variant)
    return root


class SmallFilesystem:
    """A tmpfs of a few MiB mounted on a new directory under /tmp (needs root): a disk that really fills up.

    ``owner`` ("postgres") makes its root that user's, mode 0700, for a tablespace.
    """

    def __init__(self, size_mb: int, owner: str | None = None):
        self.path = Path(tempfile.mkdtemp(prefix="mttr-small-fs-", dir="/tmp"))
        options = f"size={size_mb}m,mode=0755"
        if owner:
            import pwd

            entry = pwd.getpwnam(owner)
            options = f"size={size_mb}m,mode=0700,uid={entry.pw_uid},gid={entry.pw_gid}"
        mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)]
        result = subprocess.run(mount, capture_output=True, text=True, check=False)
        if result.returncode:
            self.path.rmdir()
            raise RuntimeError(f"cannot mount a tmpfs (root needed): {result.stderr.strip()}")

    def free(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
        if os.path.ismount(self.path):
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
        shutil.rmtree(self.path, ignore_errors=True)


def siblings(path) -> list[str]:
    """Names beside ``path`` that the files engine created (staging, safety and undone copies)."""
    path = Path(path)
    return sorted(name for name in os.listdir(path.parent) if name.startswith(f"{path.name}.mttr-"))
