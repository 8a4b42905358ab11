# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``files`` backup kind: a directory tree as one tar artifact, restored by an atomic swap.

Restore streams the archive from the repository through a hash into a staging directory beside
the target, checking every member before it is written (no absolute paths, no ``..``, no links
leaving the tree, no devices); GNU tar writes the checked members. Only when the whole stream
matches the manifest's sha256 is the staging directory swapped in, with one
``renameat2(RENAME_EXCHANGE)``; the previous tree is kept as the pre-restore safety copy. A
journal beside the target makes a restore killed at any point resumable to either the old or the
new tree, never a mix.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import zlib

from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    CHUNK,
    BackupError,
    HashingReader,
    check_artifact,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_space import DISK_FULL, disk_full, filesystem, said

COMPRESSION = {"gzip": ("gz", "tar.gz"), "none": ("", "tar")}
RENAME_EXCHANGE = 2
AT_FDCWD = -100
PR_SET_PDEATHSIG = 1


def archive_name(compression):
    return f"files.{COMPRESSION[compression][1]}"


def write_archive(source_dir, stream, compression="gzip", level=1):
    """Write ``source_dir``'s contents as a tar stream (paths relative to it) into ``stream``.

    Returns (members, unpacked size): the bytes the files take once extracted, which a restore checks
    the target's filesystem has room for.
    """
    if not os.path.isdir(source_dir):
        raise BackupError(f"cannot back up {source_dir}: it is not a directory")
    mode = "w|" + COMPRESSION[compression][0]
    kwargs = {"compresslevel": level} if compression == "gzip" else {}
    with tarfile.open(fileobj=stream, mode=mode, bufsize=CHUNK, format=tarfile.PAX_FORMAT, **kwargs) as tar:
        for name in sorted(os.listdir(source_dir)):
            tar.add(os.path.join(source_dir, name), arcname=name, recursive=True)
        return len(tar.members), sum(member.size for member in tar.members if member.isfile())


class MemberChecker:
    """Checks archive members in stream order, before any of their bytes reach the extractor.

    Refused: absolute names, ``..`` components, symlinks and hard links that resolve outside the
    tree, members written through a link that leaves it, devices, FIFOs and other special files.
    Links are resolved against the symlinks the archive itself created earlier, kept in memory (as
    ``realpath`` would on disk): the extractor runs just behind the check, so the disk cannot be asked.
    """

    MAX_HOPS = 40

    def __init__(self):
        self.links = {}  # resolved member path -> symlink target, for symlinks the archive created

    def resolve(self, parts):
        """The components of ``parts`` (relative to the root) with known symlinks followed; None if outside."""
        pending = list(parts)
        out = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not out:
                    return None
                out.pop()
                continue
            target = self.links.get("/".join([*out, part]))
            if target is None:
                out.append(part)
                continue
            hops += 1
            if hops > self.MAX_HOPS or target.startswith("/"):
                return None
            pending[:0] = target.split("/")
        return out

    def check(self, member):
        """Raise BackupError for an unsafe member; remember the symlinks it creates."""
        name = member.name
        if name.startswith("/") or os.path.isabs(name):
            raise BackupError(f"archive member {name!r} has an absolute path: the backup is unsafe and was refused")
        parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
        if ".." in parts:
            raise BackupError(f"archive member {name!r} contains '..': the backup is unsafe and was refused")
        if not parts:
            if member.isdir():
                return  # the root itself (``./``)
            raise BackupError(f"archive member {name!r} has no name: the backup is unsafe and was refused")
        parent = self.resolve(parts[:-1])
        if parent is None:
            raise BackupError(f"archive member {name!r} leaves the target: the backup is unsafe and was refused")
        path = "/".join(parent + parts[-1:])
        if member.issym():
            link = member.linkname
            if link.startswith("/") or self.resolve(parent + link.split("/")) is None:
                raise BackupError(
                    f"archive member {name!r} is a symlink to {link!r}, outside the target: the backup is unsafe "
                    "and was refused"
                )
            self.links[path] = link
            return
        self.links.pop(path, None)  # the extractor replaces a link that stood there
        if member.islnk():
            linked = member.linkname
            if linked.startswith("/") or ".." in linked.split("/") or self.resolve(linked.split("/")) is None:
                raise BackupError(f"archive member {name!r} is a hard link outside the target: refused")
        elif not (member.isfile() or member.isdir()):
            raise BackupError(f"archive member {name!r} is a device, FIFO or other special file: refused")


class _Inflating:
    """The decompressed bytes of ``source`` (gzip, possibly several members, or none) as a readable stream."""

    def __init__(self, source, compression):
        self.source = source
        self.gzip = compression == "gzip"
        self.inflater = zlib.decompressobj(31) if self.gzip else None
        self.buffer = b""
        self.offset = 0
        self.eof = False
        self.produced = 0  # decompressed bytes handed out so far

    def _fill(self):
        chunk = self.source.read(CHUNK)
        if not chunk:
            self.eof = True
            if self.gzip and not self.inflater.eof:
                raise EOFError("the compressed archive ends early")
            return b""
        if not self.gzip:
            return chunk
        data = self.inflater.decompress(chunk)
        while self.inflater.eof and self.inflater.unused_data:
            rest = self.inflater.unused_data
            self.inflater = zlib.decompressobj(31)
            data += self.inflater.decompress(rest)
        return data

    def read(self, size=-1):
        while self.offset >= len(self.buffer) and not self.eof:
            self.buffer, self.offset = self._fill(), 0
        if size is None or size < 0:
            size = len(self.buffer) - self.offset
        data = self.buffer[self.offset : self.offset + size]
        self.offset += len(data)
        self.produced += len(data)
        return data

    def drain(self):
        """Read the rest (hashed on the way) and return how many decompressed bytes the whole stream has."""
        while self.read(CHUNK):
            pass
        return self.produced


class _CheckedTee:
    """What tarfile reads, passed on to the extractor only up to where members were checked.

    tarfile reads a header (and some bytes beyond it) before the caller can check that member; the
    bytes past ``safe_until`` are held back until the check has passed, so the extractor never gets a
    member that was not checked. Held bytes stay few: a header and tarfile's read-ahead.
    """

    def __init__(self, source, sink):
        self.source = source
        self.sink = sink
        self.read_pos = 0  # stream offset of the next byte tarfile will get
        self.sent = 0  # stream offset of the next byte the extractor will get
        self.safe_until = 0
        self.held = bytearray()

    def read(self, size=-1):
        data = self.source.read(size)
        self.read_pos += len(data)
        self.held += data
        self.flush()
        return data

    def allow(self, offset):
        self.safe_until = max(self.safe_until, offset)
        self.flush()

    def flush(self):
        count = min(len(self.held), self.safe_until - self.sent)
        if count > 0:
            self.sink.write(bytes(self.held[:count]))
            del self.held[:count]
            self.sent += count

    def finish(self):
        """The end of the archive was reached through checked members: pass on the rest as it is."""
        self.allow(self.read_pos)
        while True:
            data = self.source.read(CHUNK)
            if not data:
                return
            self.sink.write(data)


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def _extractor(staging, errors):
    tar = shutil.which("tar")
    if tar is None:
        raise BackupError("restoring a files backup needs tar (GNU tar) on the host")
    preexec = None
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is not None:
        prctl = libc.prctl

        def preexec():
            # the extractor must not outlive a restore that was killed: it would write into staging
            # while the next run clears it away
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    # AnsibleModule.run_command only takes stdin whole (data=...): tar must read a stream it cannot hold
    return subprocess.Popen(  # pylint: disable=ansible-bad-function
        [tar, "-x", "-p", "-f", "-", "-C", staging],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        env=dict(os.environ, LC_ALL="C"),
        preexec_fn=preexec,
    )


def _stop(process):
    if process.poll() is None:
        process.kill()
    with contextlib.suppress(OSError):
        process.stdin.close()
    process.wait()


# tar's closing summary: the errors it sums up are on the lines before it
TAR_NOISE = ("Exiting with failure status due to previous errors",)


def extract_verified(stream, artifact, backup_id, staging, compression):
    """Extract the archive from ``stream`` into ``staging`` while hashing; verify at the end.

    One pass over the artifact: its bytes are hashed (the manifest's sha256 is over the compressed
    file), decompressed with zlib, parsed by tarfile for the checks, and the checked bytes fed to GNU
    tar, which writes the files (owners, modes, times, hard links) on the other CPU. Nothing is swapped
    in unless the digest matches, so a corrupt archive only ever reaches the staging directory.
    When tar fails, its own error lines are reported; a full disk is named with what was needed and free.
    """
    reader = HashingReader(stream)
    inflating = _Inflating(reader, compression)
    space = filesystem(staging)  # as it was before the restore began, for a disk-full message
    with tempfile.TemporaryFile() as errors:
        process = _extractor(staging, errors)
        try:
            members = _feed(inflating, process)
        except _ExtractFailed as exc:
            _stop(process)
            try:
                unpacked = inflating.drain()
            except (EOFError, OSError, zlib.error):
                unpacked = None
                reader.drain()
            if reader.size != artifact["size"] or reader.sha256.hexdigest() != artifact["sha256"]:
                check_artifact(reader, artifact, backup_id)
            errors.seek(0)
            text = errors.read().decode("utf-8", "replace")
            lines = said(text, TAR_NOISE) or str(exc)
            if DISK_FULL in text:
                need = artifact.get("unpacked_size") or unpacked
                raise BackupError(disk_full(space, f"restoring backup {backup_id}", need, lines)) from None
            raise BackupError(
                f"backup {backup_id}: cannot extract {artifact['name']}: {lines}; the target is untouched"
            ) from None
        finally:
            _stop(process)
    reader.drain()
    check_artifact(reader, artifact, backup_id)
    return reader.size, members


def _feed(inflating, process):
    """Check every member and feed the checked bytes to the extractor; the number of members."""
    tee = _CheckedTee(inflating, process.stdin)
    checker = MemberChecker()
    members = 0
    try:
        with tarfile.open(fileobj=tee, mode="r|") as tar:
            while True:
                member = tar.next()
                if member is None:
                    break
                tar.members.clear()  # nothing is extracted through tarfile: keep memory flat
                checker.check(member)
                tee.allow(tar.offset)  # up to the next member's header: this one's header and data
                members += 1
        tee.finish()
        process.stdin.close()
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise _ExtractFailed(str(exc)) from None
    rc = process.wait()
    if rc != 0:
        raise _ExtractFailed(f"tar exited with {rc}")
    return members


class _ExtractFailed(Exception):
    pass


# ---------------------------------------------------------------------------- swapping


def _renameat2():
    try:
        function = _libc().renameat2
    except AttributeError:  # no libc, or no renameat2 in it
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
                self.write_json(self.marker, self.proven(journal["marker"]))
                done.append(f"finished an interrupted restore of backup {journal['marker']['backup_id']}")
            elif current is None and os.path.exists(journal["safety"]) and os.path.exists(journal["staging"]):
                os.rename(journal["staging"], self.path)
                self.write_json(self.marker, self.proven(journal["marker"]))
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
            self.write_json(self.marker, self.proven(dict(marker, safety_copy=None)))
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
        self.write_json(self.marker, self.proven(marker))
        os.unlink(self.journal)
        fsync_dir(self.parent)
        return safety

    def proven(self, marker):
        """The marker with the fingerprint of the tree now in place (what proves later it was not changed)."""
        return dict(marker, fingerprint=tree_fingerprint(self.path))

    def holds(self, backup_id):
        """Whether the tree is the one the restore of ``backup_id`` put there, untouched since: proven from the tree.

        The marker alone proves nothing (a second data loss leaves it in place); its fingerprint must
        match the tree's metadata as it is now.
        """
        state = self.state()
        if state.get("backup_id") != backup_id or state.get("rolled_back") or not state.get("fingerprint"):
            return False
        return os.path.isdir(self.path) and tree_fingerprint(self.path) == state["fingerprint"]

    # ------------------------------------------------------------------ safety copies
    def copies(self):
        """The pre-restore and undone copies beside the target, oldest first."""
        pattern = re.compile(
            rf"^{re.escape(self.base)}\.mttr-(pre-restore|undone)-(\d{{8}}T\d{{6}}Z)-([0-9a-f]{{6}})(?:-(\d+))?$"
        )
        state = self.state()
        current = None if state.get("rolled_back") else state.get("safety_copy")
        found = []
        for name in self._siblings():
            match = pattern.match(name)
            path = os.path.join(self.parent, name)
            if not match or os.path.islink(path) or not os.path.isdir(path):
                continue
            # names say the second; within one, the rename that made it a copy set its change time
            order = (match.group(2), int(match.group(4) or 1), os.lstat(path).st_ctime_ns)
            stamp = match.group(2)
            created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
            entry = {"name": name, "path": path, "kind": match.group(1).replace("-", "_"), "created": created}
            found.append((order, dict(entry, current=path == current)))
        return [entry for _order, entry in sorted(found, key=lambda item: item[0])]

    def _siblings(self):
        try:
            return os.listdir(self.parent)
        except FileNotFoundError:
            return []

    def half_removed(self):
        """Copies whose removal was interrupted (renamed aside first, so they never pass for a copy)."""
        prefix = f"{self.base}.mttr-removing-"
        return [os.path.join(self.parent, name) for name in self._siblings() if name.startswith(prefix)]

    def remove_copy(self, path):
        """Remove a safety copy: renamed aside first, so a removal cut short never leaves half a copy named as one."""
        name = os.path.basename(path)
        aside = os.path.join(self.parent, name.replace(f"{self.base}.mttr-", f"{self.base}.mttr-removing-", 1))
        os.rename(path, aside)
        remove_tree(aside)

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


def remove_tree(path):
    """rmtree that also removes what read-only directories hold (opened up before they are entered)."""
    if not os.path.islink(path):
        os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IRWXU)
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            full = os.path.join(root, name)
            mode = os.lstat(full).st_mode
            if not stat.S_ISLNK(mode) and mode & stat.S_IRWXU != stat.S_IRWXU:
                os.chmod(full, stat.S_IMODE(mode) | stat.S_IRWXU)
    shutil.rmtree(path)


def tree_fingerprint(path):
    """A digest of the metadata of every entry under ``path``, the root included.

    Names, inode, type and mode, owner, links, size, times and symlink targets. The change time
    (ctime) is set by the kernel on every write, chmod, link or rename and cannot be set back, so
    any change made through the filesystem since the fingerprint was taken shows, without reading
    the files' contents.
    """
    digest = hashlib.sha256()

    def add(full, relative):
        try:
            info = os.lstat(full)
        except OSError as exc:
            digest.update(os.fsencode(relative) + f"\0error {exc.errno}\n".encode())
            return
        fields = (info.st_ino, info.st_mode, info.st_uid, info.st_gid, info.st_nlink, info.st_size)
        times = (info.st_mtime_ns, info.st_ctime_ns)
        digest.update(os.fsencode(relative) + f"\0{fields}\0{times}\n".encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.fsencode(os.readlink(full)))

    add(path, ".")
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            add(full, os.path.relpath(full, path))
    return digest.hexdigest()[:32]


def tree_digest(path):
    """A digest of a tree's names, modes, link targets and contents (for tests and diffs)."""
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
