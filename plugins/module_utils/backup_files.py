# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``files`` backup kind: a directory tree as one tar artifact, restored by an atomic swap.

Restore streams the archive from the repository through a hash into a staging directory beside
the target, checking every member before it is written (no absolute paths, no ``..``, no links
leaving the tree, no devices). Only when the whole stream matches the manifest's sha256 is the
staging directory swapped in, with one ``renameat2(RENAME_EXCHANGE)``; the previous tree is kept
as the pre-restore safety copy. A journal beside the target makes a restore killed at any point
resumable to either the old or the new tree, never a mix.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import errno
import json
import os
import shutil
import tarfile

from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    CHUNK,
    BackupError,
    HashingReader,
    check_artifact,
)

COMPRESSION = {"gzip": ("gz", "tar.gz"), "none": ("", "tar")}
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def archive_name(compression):
    return f"files.{COMPRESSION[compression][1]}"


def write_archive(source_dir, stream, compression="gzip", level=1):
    """Write ``source_dir``'s contents as a tar stream (paths relative to it) into ``stream``."""
    if not os.path.isdir(source_dir):
        raise BackupError(f"cannot back up {source_dir}: it is not a directory")
    mode = "w|" + COMPRESSION[compression][0]
    kwargs = {"compresslevel": level} if compression == "gzip" else {}
    with tarfile.open(fileobj=stream, mode=mode, bufsize=CHUNK, format=tarfile.PAX_FORMAT, **kwargs) as tar:
        for name in sorted(os.listdir(source_dir)):
            tar.add(os.path.join(source_dir, name), arcname=name, recursive=True)
        return len(tar.members)


def _inside(root, path):
    root = os.path.abspath(root)
    path = os.path.abspath(path)
    return path == root or path.startswith(root + os.sep)


def check_member(member, root):
    """Refuse archive members that would write outside ``root`` or create special files."""
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        raise BackupError(f"archive member {name!r} has an absolute path: the backup is unsafe and was refused")
    if ".." in name.replace("\\", "/").split("/"):
        raise BackupError(f"archive member {name!r} contains '..': the backup is unsafe and was refused")
    destination = os.path.join(root, name)
    # links already extracted are resolved on disk too: ``c -> sub/..`` then ``a -> c/../x`` looks inside, is not
    real_root = os.path.realpath(root)
    if not _inside(root, destination) or not _inside(real_root, os.path.realpath(os.path.dirname(destination))):
        raise BackupError(f"archive member {name!r} leaves the target: the backup is unsafe and was refused")
    if member.issym():
        link = member.linkname
        resolved = os.path.join(os.path.dirname(destination), link)
        if os.path.isabs(link) or not _inside(root, resolved) or not _inside(real_root, os.path.realpath(resolved)):
            raise BackupError(
                f"archive member {name!r} is a symlink to {link!r}, outside the target: the backup is unsafe "
                "and was refused"
            )
    elif member.islnk():
        linked = os.path.join(root, member.linkname)
        if (
            os.path.isabs(member.linkname)
            or not _inside(root, linked)
            or not _inside(real_root, os.path.realpath(linked))
        ):
            raise BackupError(f"archive member {name!r} is a hard link outside the target: refused")
    elif not (member.isfile() or member.isdir()):
        raise BackupError(f"archive member {name!r} is a device, FIFO or other special file: refused")


def _data_checked(member, path):
    """tarfile's data filter as a second safety check only: the member keeps its modes and owners.

    (The data filter itself would drop owners and rewrite modes: a 0700 directory would come back 0755.)
    """
    tarfile.data_filter(member, path)
    return member


def extract_verified(stream, artifact, backup_id, staging, compression):
    """Extract the archive from ``stream`` into ``staging`` while hashing; verify at the end."""
    reader = HashingReader(stream)
    mode = "r|" + COMPRESSION[compression][0]
    extract_kwargs = {"filter": _data_checked} if hasattr(tarfile, "data_filter") else {}
    members = 0
    try:
        # tarfile's default buffer: with a 1 MiB one every 512-byte header read copies the rest of the
        # decompressed buffer, and a restore of many small files takes seconds instead of a fraction
        with tarfile.open(fileobj=reader, mode=mode) as tar:
            directories = []
            for member in tar:
                check_member(member, staging)
                # a directory's owner, mode and time are set last (as extractall does): a read-only one
                # must still receive its files
                tar.extract(member, staging, set_attrs=not member.isdir(), **extract_kwargs)
                if member.isdir():
                    directories.append(member)
                members += 1
            for member in sorted(directories, key=lambda m: m.name, reverse=True):
                path = os.path.join(staging, member.name)
                tar.chown(member, path, False)
                tar.utime(member, path)
                tar.chmod(member, path)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        reader.drain()
        if reader.size != artifact["size"] or reader.sha256.hexdigest() != artifact["sha256"]:
            check_artifact(reader, artifact, backup_id)
        raise BackupError(f"backup {backup_id}: cannot extract {artifact['name']}: {exc}") from None
    reader.drain()
    check_artifact(reader, artifact, backup_id)
    return reader.size, members


# ---------------------------------------------------------------------------- swapping


def _renameat2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


def exchange(a, b):
    """Swap two paths atomically (Linux renameat2); False when the system cannot."""
    function = _renameat2()
    if function is None:
        return False
    result = function(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), a)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectoryTarget:
    """A directory restored in place, with its staging, safety copies, marker and journal beside it."""

    def __init__(self, path):
        self.path = os.path.abspath(path.rstrip("/"))
        self.parent = os.path.dirname(self.path)
        self.base = os.path.basename(self.path)
        self.marker = os.path.join(self.parent, f".{self.base}.mttr-restore.json")
        self.journal = os.path.join(self.parent, f".{self.base}.mttr-journal.json")

    def sibling(self, label, backup_id):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = os.path.join(self.parent, f"{self.base}.mttr-{label}-{stamp}-{backup_id[-6:]}")
        candidate, number = path, 1
        while os.path.lexists(candidate):  # a second restore (force) or roll back within the same second
            number += 1
            candidate = f"{path}-{number}"
        return candidate

    def read_json(self, path):
        try:
            with open(path) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except ValueError:
            raise BackupError(f"{path} is corrupt: inspect it, then remove it to go on") from None

    def write_json(self, path, data):
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(self.parent)

    def state(self):
        """What the marker says about the current tree (which backup it came from, its safety copy)."""
        return self.read_json(self.marker) or {}

    def stale_staging(self):
        prefix = f"{self.base}.mttr-staging-"
        try:
            names = os.listdir(self.parent)
        except FileNotFoundError:  # a restore into a directory that does not exist yet
            return []
        return [os.path.join(self.parent, name) for name in names if name.startswith(prefix)]

    def recover(self):
        """Finish or undo a swap that was interrupted; return lines saying what was done."""
        done = []
        journal = self.read_json(self.journal)
        if journal:
            new_inode = journal["new_inode"]
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == new_inode:
                # the swap happened: the old tree sits at the staging path; keep it as the safety copy
                if os.path.exists(journal["staging"]):
                    os.rename(journal["staging"], journal["safety"])
                self.write_json(self.marker, journal["marker"])
                done.append(f"finished an interrupted restore of backup {journal['marker']['backup_id']}")
            elif current is None and os.path.exists(journal["safety"]) and os.path.exists(journal["staging"]):
                os.rename(journal["staging"], self.path)
                self.write_json(self.marker, journal["marker"])
                done.append(f"finished an interrupted restore of backup {journal['marker']['backup_id']}")
            else:
                done.append("discarded an interrupted restore that had not swapped anything in")
            os.unlink(self.journal)
            fsync_dir(self.parent)
        for path in self.stale_staging():
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed the leftover staging directory {path}")
        return done

    def swap_in(self, staging, marker):
        """Make ``staging`` the target atomically; return the safety copy's path (None if no old tree)."""
        if not os.path.lexists(self.path):
            os.rename(staging, self.path)
            self.write_json(self.marker, dict(marker, safety_copy=None))
            return None
        safety = self.sibling("pre-restore", marker["backup_id"])
        marker = dict(marker, safety_copy=safety)
        self.write_json(
            self.journal, {"new_inode": os.stat(staging).st_ino, "staging": staging, "safety": safety, "marker": marker}
        )
        if exchange(staging, self.path):
            os.rename(staging, safety)
        else:
            os.rename(self.path, safety)
            os.rename(staging, self.path)
        fsync_dir(self.parent)
        self.write_json(self.marker, marker)
        os.unlink(self.journal)
        fsync_dir(self.parent)
        return safety

    def roll_back(self):
        """Put the pre-restore safety copy back; the undone tree is kept beside it. Returns its path."""
        state = self.state()
        safety = state.get("safety_copy")
        if not state or state.get("rolled_back"):
            return None
        if not safety or not os.path.isdir(safety):
            where = safety or "(none: the target did not exist before the restore)"
            raise BackupError(f"cannot roll back the restore of {self.path}: its safety copy {where} is gone")
        undone = self.sibling("undone", state["backup_id"])
        if exchange(safety, self.path):
            os.rename(safety, undone)
        else:
            os.rename(self.path, undone)
            os.rename(safety, self.path)
        fsync_dir(self.parent)
        self.write_json(self.marker, dict(state, rolled_back=True, undone_copy=undone, safety_copy=None))
        return undone


def tree_digest(path):
    """A digest of a tree's names, modes, link targets and contents (for tests and diffs)."""
    import hashlib

    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            info = os.lstat(full)
            digest.update(f"{os.path.relpath(full, path)}\0{info.st_mode}\0".encode())
            if os.path.islink(full):
                digest.update(os.readlink(full).encode())
            elif os.path.isfile(full):
                with open(full, "rb") as handle:
                    for block in iter(lambda h=handle: h.read(CHUNK), b""):
                        digest.update(block)
    return digest.hexdigest()
