# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup, list/verify, restore, roll back and prune safety copies: the operations the backup modules adapt.

Each function takes a repository, a target and ``check_mode``, and returns a result dict with
``changed`` computed from what happened (or would happen). When one fails after it changed
something, the exception's ``result`` says what (``changed``, ``recovered``, ``removed``...).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import platform
import re
import shutil
import tempfile
import threading
import time

from ansible_collections.mttr.recovery.plugins.module_utils.backup_files import (
    DirectoryTarget,
    archive_name,
    extract_verified,
    remove_tree,
    write_archive,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_postgres import PostgresTarget
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    FORMAT,
    BackupError,
    LocalRepository,
    check_size,
    new_backup_id,
    parse_time,
    select_backup_noting,
    skipped_summary,
    utcnow,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_space import (
    disk_full,
    filesystem,
    require_space,
    said,
)

WORK_DIR_RE = re.compile(r"^mttr-(restore|backup)-(?:(\d+)-(\d+)-)?[a-z0-9_]+$")
LEGACY_WORK_DIR_AGE = 60  # seconds: a work directory named without its process is left alone while this young


@contextlib.contextmanager
def changes_on_failure(result):
    """Re-raise any failure with ``result`` (kept up to date by the caller) attached: what was already changed."""
    try:
        yield result
    except BaseException as exc:
        previous = getattr(exc, "result", None) or {}
        if result.get("changed") or previous.get("changed"):
            merged = dict(result, **previous, changed=True)
            with contextlib.suppress(AttributeError):  # a type that takes no attributes: nothing to attach
                exc.result = merged
        raise


def _process_start(pid):
    """The start time of process ``pid`` (clock ticks since boot, as text), or None when it does not run.

    With the pid, it names a process uniquely: a pid reused by a later process has another start time.
    """
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return None
    except (OSError, IndexError):  # no /proc here: whether the pid runs is all that can be told
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "0"


@contextlib.contextmanager
def work_dir(prefix, tmp_dir=None):
    """A temporary directory named after this process (pid and start time), removed on exit.

    A process killed with it (SIGKILL runs no clean-up) leaves it behind; the name tells the next
    run that its process is gone (remove_stale_work_dirs).
    """
    pid = os.getpid()
    path = tempfile.mkdtemp(prefix=f"{prefix}{pid}-{_process_start(pid) or 0}-", dir=tmp_dir)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_work_dirs(tmp_dir=None):
    """Remove the work directories of killed restores and backups; lines saying what was removed.

    A directory named after a process that no longer runs is removed; one named by an older version
    (no process in its name) only when it is empty and a minute old.
    """
    root = tmp_dir or tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return []
    done = []
    for name in sorted(names):
        match = WORK_DIR_RE.match(name)
        path = os.path.join(root, name)
        if not match or os.path.islink(path) or not os.path.isdir(path):
            continue
        pid, start = match.group(2), match.group(3)
        try:
            if pid and _process_start(int(pid)) == start:
                continue
            if not pid and (os.listdir(path) or time.time() - os.lstat(path).st_mtime < LEGACY_WORK_DIR_AGE):
                continue
            shutil.rmtree(path)
        except OSError:
            continue  # another user's, or already gone
        done.append(f"removed the work directory of a killed {match.group(1)} {path}")
    return done


def restore_verifying(target, run, dump, artifact, backup_id, staging, jobs, space=None, need=None):
    """Restore a dump from a local repository into ``staging`` while another thread verifies it.

    Its size is checked first; its sha256 is computed alongside pg_restore (the second read comes from
    the page cache), and the staging database is dropped unless the digest matches: nothing is
    swapped in unverified, and the restore does not wait for a separate full read of the dump first.
    """
    outcome = {}

    def verify():
        try:
            outcome["size"] = target.verify_in_place(dump, artifact, backup_id)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    check_size(os.path.getsize(dump), artifact, backup_id)  # a truncated dump never reaches pg_restore
    verifier = threading.Thread(target=verify, name="mttr-verify-dump", daemon=True)
    verifier.start()
    try:
        target.restore_into_staging(run, dump, staging, jobs, space, need)
    except BaseException:
        verifier.join()
        if "error" in outcome:
            raise outcome["error"] from None  # a corrupt dump is why pg_restore failed
        raise
    verifier.join()
    if "error" in outcome:
        target.discard(staging)
        raise outcome["error"]
    return outcome["size"]


def _manifest(backup_id, kind, source, artifacts, tags, tools, started):
    return {
        "format": FORMAT,
        "id": backup_id,
        "created": started.isoformat().replace("+00:00", "Z"),
        "kind": kind,
        "source": source,
        "artifacts": artifacts,
        "size": sum(a["size"] for a in artifacts),
        "tools": dict(tools, python=platform.python_version()),
        "tags": tags or {},
    }


def take_backup(
    repository,
    kind,
    check_mode=False,
    run=None,
    tags=None,
    source_name=None,
    path=None,
    compression="gzip",
    target=None,
    tmp_dir=None,
    keep_count=None,
    keep_days=None,
):
    """Take a backup of a directory (``path``) or a database (``target``); apply retention.

    Every run takes a new backup: that is a change each time. With a repository key the manifest is
    signed (an HMAC over its whole content).
    """
    started = utcnow()
    clock = time.monotonic()
    backup_id = new_backup_id(kind, started)
    if kind == "files":
        if not path or not os.path.isdir(path):
            raise BackupError(f"cannot back up {path!r}: it is not a directory")
        source = {
            "name": source_name or os.path.basename(os.path.abspath(path)),
            "host": platform.node(),
            "path": os.path.abspath(path),
        }
    else:
        if not target.exists():
            raise BackupError(f"cannot back up database {target.database!r}: it does not exist")
        source = {"name": source_name or target.database, "host": platform.node(), "database": target.database}
    plan = {"id": backup_id, "kind": kind, "source": source, "repository": repository.describe()}
    if repository.key is not None:
        plan["authentication"] = "hmac-sha256"
    if check_mode:
        pruned = prune_plan(repository, kind, source["name"], keep_count, keep_days, extra=1)
        return {"changed": True, "backup": plan, "pruned": pruned, "recovered": []}

    result = {"changed": False, "recovered": [], "pruned": []}
    with changes_on_failure(result):
        artifacts = []
        tools = {}
        if kind == "files":
            name = archive_name(compression)
            with repository.artifact_writer(backup_id, name) as stream:
                members, unpacked = write_archive(path, stream, compression)
            writer = stream
            artifacts.append(
                {
                    "name": name,
                    "size": writer.size,
                    "sha256": writer.sha256.hexdigest(),
                    "compression": compression,
                    "members": members,
                    "unpacked_size": unpacked,
                }
            )
            tools["tar"] = "python tarfile"
        else:
            result["recovered"] = remove_stale_work_dirs(tmp_dir)
            result["changed"] = bool(result["recovered"])
            tools["pg_dump"] = target.version(run)
            with work_dir("mttr-backup-", tmp_dir) as workdir:
                dump = os.path.join(workdir, f"{target.database}.dump")
                dumped = target.dump(run, dump)
                with open(dump, "rb") as handle:
                    size, sha256 = repository.write_artifact(backup_id, os.path.basename(dump), handle)
            artifact = {"name": f"{target.database}.dump", "size": size, "sha256": sha256, "format": "custom"}
            artifact["database_size"] = dumped["database_size"]
            if dumped["fingerprint"]:
                artifact["fingerprint"] = dumped["fingerprint"]
            artifacts.append(artifact)
        manifest = _manifest(backup_id, kind, source, artifacts, tags, tools, started)
        manifest = repository.store_manifest(backup_id, manifest)
        result.update(changed=True, backup=manifest)
        result["pruned"] = prune(repository, kind, source["name"], keep_count, keep_days, protect=backup_id)
    return dict(result, duration_s=round(time.monotonic() - clock, 3))


def prune_plan(repository, kind, source_name, keep_count, keep_days, extra=0, protect=None):
    """Ids that retention would delete (oldest first); ``extra`` counts backups about to be added."""
    if not keep_count and not keep_days:
        return []
    good, _bad = repository.catalog(kind=kind, source=source_name)
    doomed = []
    if keep_count:
        excess = len(good) + extra - keep_count
        doomed.extend(m["id"] for m in good[: max(0, excess)])
    if keep_days:
        limit = utcnow() - datetime.timedelta(days=keep_days)
        doomed.extend(m["id"] for m in good if parse_time(m["created"]) < limit)
    return sorted({d for d in doomed if d != protect})


def prune(repository, kind, source_name, keep_count, keep_days, protect):
    doomed = prune_plan(repository, kind, source_name, keep_count, keep_days, protect=protect)
    for backup_id in doomed:
        repository.delete(backup_id)
    return doomed


def backup_info(repository, kind=None, source_name=None, verify="manifest", path=None, target=None):
    """List backups (oldest first) with their verification status; with a target, its safety copies too."""
    good, bad = repository.catalog(kind=kind, source=source_name)
    backups = []
    for manifest in good:
        entry = {key: manifest[key] for key in ("id", "created", "kind", "source", "size", "tags", "artifacts")}
        entry["status"] = "complete"
        entry["authenticated"] = repository.key is not None and "authentication" in manifest
        if verify == "full":
            try:
                repository.verify(manifest["id"], manifest)
                entry["status"] = "verified"
            except BackupError as exc:
                entry["status"] = "corrupt"
                entry["error"] = str(exc)
        backups.append(entry)
    for broken in bad:
        backups.append({"id": broken["id"], "status": broken["status"], "error": broken["error"]})
    result = {
        "changed": False,
        "backups": backups,
        "count": len(backups),
        "latest": good[-1]["id"] if good else None,
        "repository": repository.describe(),
        "warnings": list(repository.warnings),
    }
    if path or target:
        result["safety_copies"] = safety_copies("files" if path else "postgres", path=path, target=target)
    return result


def find_backup(repository, kind=None, source_name=None, latest_before=None, verify="manifest"):
    """The id of the newest complete, authentic backup (re-hashed with ``verify=full``); why none otherwise."""
    good, bad = repository.catalog(kind=kind, source=source_name)
    if latest_before:
        limit = parse_time(latest_before)
        good = [m for m in good if parse_time(m["created"]) < limit]
    corrupt = []
    for manifest in reversed(good):
        if verify == "full":
            try:
                repository.verify(manifest["id"], manifest)
            except BackupError as exc:
                corrupt.append(str(exc))
                continue
        return manifest["id"]
    also = f"; {len(corrupt)} corrupt: {corrupt[0]}" if corrupt else ""
    raise BackupError(
        f"no {'verified' if verify == 'full' else 'complete'} backup matches in {repository.describe()}"
        f"{skipped_summary(bad)}{also}"
    )


def _space_plan(kind, manifest, place, tmp_dir, repository):
    """What a restore of ``manifest`` needs where: a list of (directory, bytes, inodes, what, basis), or why unknown."""
    artifact = manifest["artifacts"][0]
    what = f"backup {manifest['id']}"
    if kind == "files":
        need = artifact.get("unpacked_size")
        basis = "the files it holds, from the manifest"
        if need is None and artifact.get("compression") == "none":
            need, basis = artifact["size"], "the archive's size, from the manifest"
        if need is None:
            return [], "the manifest does not say how much the archive unpacks to (taken by an older version)"
        return [(place.parent, need, artifact.get("members"), f"restoring {what}", basis)], None
    needs = []
    if not isinstance(repository, LocalRepository):
        needs.append((tmp_dir or tempfile.gettempdir(), artifact["size"], None, f"downloading {what}", "its dump"))
    location, why = place.location(place.tablespace())
    if location is None:
        return needs, f"the database's disk cannot be checked: {why}"
    if "database_size" in artifact:
        need, basis = artifact["database_size"], "the database's size when it was backed up"
    else:
        need, basis = artifact["size"], "the dump's size, a lower bound (taken by an older version)"
    needs.append((location, need, None, f"restoring {what} into a staging database", basis))
    return needs, None


def check_space(kind, manifest, place, tmp_dir, repository):
    """Refuse a restore the disks have no room for; what was checked (or why not), for the result."""
    needs, unknown = _space_plan(kind, manifest, place, tmp_dir, repository)
    by_mount = {}
    for directory, need, inodes, what, basis in needs:
        mount = filesystem(directory)["mount"]
        if mount in by_mount:  # the download and the database on one disk: both at once
            first = by_mount[mount]
            by_mount[mount] = (first[0], first[1] + need, first[2], f"{first[3]} and {what}", f"{first[4]} + {basis}")
        else:
            by_mount[mount] = (directory, need, inodes, what, basis)
    checked = [
        require_space(directory, need, what, inodes=inodes, basis=basis)
        for directory, need, inodes, what, basis in by_mount.values()
    ]
    return {"checked": checked, "not_checked": unknown}


def restore(
    repository,
    kind,
    check_mode=False,
    run=None,
    backup="latest",
    latest_before=None,
    source_name=None,
    path=None,
    target=None,
    force=False,
    jobs=2,
    tmp_dir=None,
    check_free_space=True,
):
    """Restore a verified backup into a staging place and swap it in; keep the previous state.

    The target is left alone when it is proven (from its data, not from the marker beside it) to hold
    the selected backup already. A restore the disks have no room for is refused before it starts.
    """
    clock = time.monotonic()
    manifest, skipped = select_backup_noting(
        repository, kind=kind, source=source_name, backup_id=backup, latest_before=latest_before
    )
    artifact = manifest["artifacts"][0]
    place = DirectoryTarget(path) if kind == "files" else target
    progress = {"changed": False, "recovered": []}
    with changes_on_failure(progress):
        # finish or undo an interrupted restore first: the state to compare with is the one it leaves
        if not check_mode:
            progress["recovered"] = place.recover()
            if kind == "postgres":
                progress["recovered"] += remove_stale_work_dirs(tmp_dir)
            progress["changed"] = bool(progress["recovered"])
        recovered = progress["recovered"]
        # with force the restore happens whatever the target holds: its data is not read to find out
        if kind == "files":
            where, current = place.path, place.state()
            exists = os.path.lexists(place.path)
            holds = not force and place.holds(manifest["id"])
        else:
            where = f"database {target.database}"
            exists = target.exists()
            current = target.state() if exists else {}
            holds = not force and target.holds(manifest["id"], artifact.get("fingerprint"))
        recorded = None if current.get("rolled_back") else current.get("backup_id")
        changed_since = recorded == manifest["id"] and not holds and not force
        if changed_since:
            recorded = f"{recorded} (changed since it was restored)"
        before = {"target": where, "exists": exists, "backup_id": manifest["id"] if holds else recorded}
        after = {"target": where, "exists": True, "backup_id": manifest["id"]}
        result = {
            "backup_id": manifest["id"],
            "backup_created": manifest["created"],
            "target": where,
            "diff": {"before": before, "after": after},
            "warnings": skipped + repository.warnings,
        }
        if holds:
            return dict(
                result,
                changed=bool(recovered),
                msg=f"{where} already holds backup {manifest['id']} (its data proves it)"
                + (" (an interrupted restore of it was finished)" if recovered else ""),
                safety_copy=current.get("safety_copy") if recovered else None,
                bytes=0,
                verification="skipped",
                recovered=recovered,
                space=None,
                duration_s=round(time.monotonic() - clock, 3),
            )
        if not manifest["artifacts"] or not repository.exists(manifest["id"], artifact["name"]):
            raise BackupError(f"backup {manifest['id']}: artifact {artifact['name']} is missing")
        space = check_space(kind, manifest, place, tmp_dir, repository) if check_free_space else None
        if check_mode:
            again = " (the data changed since it was restored)" if changed_since else ""
            return dict(
                result,
                changed=True,
                verification="manifest",
                safety_copy=None,
                bytes=0,
                recovered=[],
                space=space,
                duration_s=round(time.monotonic() - clock, 3),
                msg=f"would restore backup {manifest['id']} into {where}{again}"
                + (" (the current state would be kept as a safety copy)" if exists else ""),
            )
        if kind == "files":
            size, safety = _restore_files(repository, manifest, artifact, place)
        else:
            size, safety = _restore_postgres(repository, manifest, artifact, target, run, jobs, tmp_dir)
        progress["changed"] = True
    return dict(
        result,
        changed=True,
        safety_copy=safety,
        bytes=size,
        verification="sha256",
        recovered=recovered,
        space=space,
        duration_s=round(time.monotonic() - clock, 3),
        msg=f"restored backup {manifest['id']} into {where}"
        + (f"; the previous state is kept at {safety}" if safety else ""),
    )


def _restore_files(repository, manifest, artifact, place):
    os.makedirs(place.parent, exist_ok=True)
    space = filesystem(place.parent)
    staging = place.sibling("staging", manifest["id"])
    try:
        os.mkdir(staging, 0o700)
        try:
            stream = repository.open_artifact(manifest["id"], artifact["name"])
        except FileNotFoundError:
            raise BackupError(f"backup {manifest['id']}: artifact {artifact['name']} is missing") from None
        try:
            size, _members = extract_verified(
                stream, artifact, manifest["id"], staging, artifact.get("compression", "gzip")
            )
        finally:
            stream.close()
        if os.path.isdir(place.path):
            os.chmod(staging, os.stat(place.path).st_mode & 0o7777)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            need = artifact.get("unpacked_size")
            raise BackupError(disk_full(space, f"restoring backup {manifest['id']}", need, str(exc))) from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    new_inode = os.stat(staging).st_ino
    try:
        safety = place.swap_in(staging, {"backup_id": manifest["id"], "restored_at": utcnow().isoformat()})
    except BaseException as exc:
        # past the exchange the new tree is in place: the failure must say so (the next run finishes it)
        with contextlib.suppress(OSError):
            if os.stat(place.path).st_ino == new_inode:
                exc.result = dict(getattr(exc, "result", None) or {}, changed=True)
        raise
    return size, safety


def _restore_postgres(repository, manifest, artifact, target, run, jobs, tmp_dir):
    names = target.names(manifest["id"])
    location, _why = target.location(target.tablespace())
    fs = filesystem(location) if location else None  # as it was before, for a disk-full message
    need = artifact.get("database_size") or artifact["size"]
    try:
        if isinstance(repository, LocalRepository):
            dump = repository.artifact_path(manifest["id"], artifact["name"])
            size = restore_verifying(target, run, dump, artifact, manifest["id"], names["staging"], jobs, fs, need)
        else:
            with work_dir("mttr-restore-", tmp_dir) as workdir:
                dump = os.path.join(workdir, artifact["name"])
                download = filesystem(workdir)
                try:
                    size = target.fetch_verified(repository, manifest, artifact, dump)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    what = f"downloading backup {manifest['id']}"
                    raise BackupError(disk_full(download, what, artifact["size"], said(str(exc)))) from None
                target.restore_into_staging(run, dump, names["staging"], jobs, fs, need)
    except FileNotFoundError:
        raise BackupError(f"backup {manifest['id']}: artifact {artifact['name']} is missing") from None
    expected = artifact.get("fingerprint")
    if expected and target.fingerprint(names["staging"], rows=False) == expected[:16]:
        # the same schema, filled from the verified dump of the data that fingerprint was taken of
        fingerprint = expected
    else:
        fingerprint = target.fingerprint(names["staging"])
    safety = target.swap_in(
        names["staging"], names["safety"], {"backup_id": manifest["id"], "fingerprint": fingerprint}
    )
    return size, safety


def safety_copies(kind, path=None, target=None):
    """The pre-restore and undone copies kept beside a target, oldest first (``current``: its last restore's)."""
    return (DirectoryTarget(path) if kind == "files" else target).copies()


def prune_safety_copies(kind, keep, check_mode=False, path=None, target=None):
    """Remove all but ``keep`` safety copies of a target: the current one first, then the newest.

    The copy the target's last restore made is what ``state=rolled_back`` puts back: it is kept as long
    as ``keep`` is at least 1. Run this once the restore was validated.
    """
    place = DirectoryTarget(path) if kind == "files" else target
    where = place.path if kind == "files" else f"database {target.database}"
    key = "path" if kind == "files" else "database"
    copies = place.copies()
    preferred = [c for c in copies if c["current"]] + [c for c in reversed(copies) if not c["current"]]
    keeping = {c["name"] for c in preferred[: max(0, keep)]}
    kept = [c[key] for c in copies if c["name"] in keeping]
    doomed = [c[key] for c in copies if c["name"] not in keeping]
    half = place.half_removed() if kind == "files" else []
    diff = {
        "before": {"target": where, "safety_copies": [c[key] for c in copies]},
        "after": {"target": where, "safety_copies": kept},
    }
    result = {"changed": False, "target": where, "kept": kept, "removed": [], "recovered": [], "diff": diff}
    if check_mode:
        return dict(
            result,
            changed=bool(doomed or half),
            removed=doomed,
            msg=f"would remove {len(doomed)} of the {len(copies)} safety copies of {where}, keeping {len(kept)}",
        )
    with changes_on_failure(result):
        for path_ in half:
            remove_tree(path_)
            result["recovered"].append(f"removed {path_}, a safety copy whose removal was cut short")
            result["changed"] = True
        for name in doomed:
            place.remove_copy(name)
            result["removed"].append(name)
            result["changed"] = True
    return dict(
        result,
        msg=f"removed {len(doomed)} of the {len(copies)} safety copies of {where}, keeping {len(kept)}"
        if doomed
        else f"{where} has {len(copies)} safety copies, no more than {keep} to keep",
    )


def roll_back(kind, check_mode=False, path=None, target=None):
    """Undo the last restore of a target: put its pre-restore safety copy back."""
    place = DirectoryTarget(path) if kind == "files" else target
    where = place.path if kind == "files" else f"database {target.database}"
    progress = {"changed": False, "recovered": []}
    with changes_on_failure(progress):
        # an interrupted restore is finished (or undone) first, so the restore rolled back is the last one
        recovered = [] if check_mode else place.recover()
        progress.update(changed=bool(recovered), recovered=recovered)
        state = place.state()
        if not state or state.get("rolled_back"):
            return {
                "changed": bool(recovered),
                "target": where,
                "msg": f"{where} has no restore to roll back",
                "undone_copy": None,
                "recovered": recovered,
            }
        safety = state.get("safety_copy")
        diff = {
            "before": {"target": where, "backup_id": state.get("backup_id")},
            "after": {"target": where, "backup_id": None, "restored_from": safety},
        }
        if check_mode:
            return {
                "changed": True,
                "target": where,
                "diff": diff,
                "undone_copy": None,
                "msg": f"would put the safety copy {safety} back at {where}",
            }
        undone = place.roll_back()
    return {
        "changed": True,
        "target": where,
        "diff": diff,
        "undone_copy": undone,
        "recovered": recovered,
        "msg": f"rolled back the restore of backup {state['backup_id']}: {where} is back to its previous state; "
        f"the restored state is kept at {undone}",
    }


__all__ = [
    "PostgresTarget",
    "backup_info",
    "find_backup",
    "prune_safety_copies",
    "restore",
    "roll_back",
    "safety_copies",
    "take_backup",
]
