# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup, list/verify, restore and roll back: the operations the backup modules adapt.

Each function takes a repository, a target and ``check_mode``, and returns a result dict with
``changed`` computed from what happened (or would happen).
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import tempfile
import threading
import time

from ansible_collections.mttr.recovery.plugins.module_utils.backup_files import (
    DirectoryTarget,
    archive_name,
    extract_verified,
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
    select_backup,
    utcnow,
)


def restore_verifying(target, run, dump, artifact, backup_id, staging, jobs):
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
        target.restore_into_staging(run, dump, staging, jobs)
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
    """Take a backup of a directory (``path``) or a database (``target``); apply retention."""
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
    if check_mode:
        pruned = prune_plan(repository, kind, source["name"], keep_count, keep_days, extra=1)
        return {"changed": True, "backup": plan, "pruned": pruned}

    artifacts = []
    tools = {}
    if kind == "files":
        name = archive_name(compression)
        with repository.artifact_writer(backup_id, name) as stream:
            members = write_archive(path, stream, compression)
        writer = stream
        artifacts.append(
            {
                "name": name,
                "size": writer.size,
                "sha256": writer.sha256.hexdigest(),
                "compression": compression,
                "members": members,
            }
        )
        tools["tar"] = "python tarfile"
    else:
        tools["pg_dump"] = target.version(run)
        workdir = tempfile.mkdtemp(prefix="mttr-backup-", dir=tmp_dir)
        try:
            dump = os.path.join(workdir, f"{target.database}.dump")
            target.dump(run, dump)
            with open(dump, "rb") as handle:
                size, sha256 = repository.write_artifact(backup_id, os.path.basename(dump), handle)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        artifacts.append({"name": f"{target.database}.dump", "size": size, "sha256": sha256, "format": "custom"})
    manifest = _manifest(backup_id, kind, source, artifacts, tags, tools, started)
    repository.write_manifest(backup_id, manifest)
    pruned = prune(repository, kind, source["name"], keep_count, keep_days, protect=backup_id)
    return {"changed": True, "backup": manifest, "pruned": pruned, "duration_s": round(time.monotonic() - clock, 3)}


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


def backup_info(repository, kind=None, source_name=None, verify="manifest"):
    """List backups (oldest first) with their verification status."""
    good, bad = repository.catalog(kind=kind, source=source_name)
    backups = []
    for manifest in good:
        entry = {key: manifest[key] for key in ("id", "created", "kind", "source", "size", "tags", "artifacts")}
        entry["status"] = "complete"
        if verify == "full":
            try:
                repository.verify(manifest["id"], manifest)
                entry["status"] = "verified"
            except BackupError as exc:
                entry["status"] = "corrupt"
                entry["error"] = str(exc)
        backups.append(entry)
    for broken in bad:
        backups.append({"id": broken["id"], "status": "incomplete", "error": broken["error"]})
    return {
        "changed": False,
        "backups": backups,
        "count": len(backups),
        "latest": good[-1]["id"] if good else None,
        "repository": repository.describe(),
    }


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
):
    """Restore a verified backup into a staging place and swap it in; keep the previous state."""
    clock = time.monotonic()
    manifest = select_backup(repository, kind=kind, source=source_name, backup_id=backup, latest_before=latest_before)
    artifact = manifest["artifacts"][0]
    place = DirectoryTarget(path) if kind == "files" else target
    # finish or undo an interrupted restore first: the state to compare with is the one it leaves
    recovered = [] if check_mode else place.recover()
    if kind == "files":
        where, current = place.path, place.state()
        exists = os.path.lexists(place.path)
    else:
        where, current = f"database {target.database}", target.state()
        exists = target.exists()
    before = {
        "target": where,
        "exists": exists,
        "backup_id": None if current.get("rolled_back") else current.get("backup_id"),
    }
    after = {"target": where, "exists": True, "backup_id": manifest["id"]}
    result = {
        "backup_id": manifest["id"],
        "backup_created": manifest["created"],
        "target": where,
        "diff": {"before": before, "after": after},
    }
    if before["backup_id"] == manifest["id"] and not force:
        return dict(
            result,
            changed=bool(recovered),
            msg=f"{where} already holds backup {manifest['id']}"
            + (" (an interrupted restore of it was finished)" if recovered else ""),
            safety_copy=current.get("safety_copy") if recovered else None,
            bytes=0,
            verification="skipped",
            recovered=recovered,
        )
    if check_mode:
        if not manifest["artifacts"] or not repository.exists(manifest["id"], artifact["name"]):
            raise BackupError(f"backup {manifest['id']}: artifact {artifact['name']} is missing")
        return dict(
            result,
            changed=True,
            verification="manifest",
            safety_copy=None,
            bytes=0,
            recovered=[],
            msg=f"would restore backup {manifest['id']} into {where}"
            + (" (the current state would be kept as a safety copy)" if exists else ""),
        )

    if kind == "files":
        os.makedirs(place.parent, exist_ok=True)
        staging = place.sibling("staging", manifest["id"])
        os.mkdir(staging, 0o700)
        try:
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
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        safety = place.swap_in(staging, {"backup_id": manifest["id"], "restored_at": utcnow().isoformat()})
    else:
        names = target.names(manifest["id"])
        workdir = tempfile.mkdtemp(prefix="mttr-restore-", dir=tmp_dir)
        try:
            try:
                if isinstance(repository, LocalRepository):
                    dump = repository.artifact_path(manifest["id"], artifact["name"])
                    size = restore_verifying(target, run, dump, artifact, manifest["id"], names["staging"], jobs)
                else:
                    dump = os.path.join(workdir, artifact["name"])
                    size = target.fetch_verified(repository, manifest, artifact, dump)
                    target.restore_into_staging(run, dump, names["staging"], jobs)
            except FileNotFoundError:
                raise BackupError(f"backup {manifest['id']}: artifact {artifact['name']} is missing") from None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        safety = target.swap_in(names["staging"], names["safety"], {"backup_id": manifest["id"]})
    return dict(
        result,
        changed=True,
        safety_copy=safety,
        bytes=size,
        verification="sha256",
        recovered=recovered,
        duration_s=round(time.monotonic() - clock, 3),
        msg=f"restored backup {manifest['id']} into {where}"
        + (f"; the previous state is kept at {safety}" if safety else ""),
    )


def roll_back(kind, check_mode=False, path=None, target=None):
    """Undo the last restore of a target: put its pre-restore safety copy back."""
    place = DirectoryTarget(path) if kind == "files" else target
    where = place.path if kind == "files" else f"database {target.database}"
    # an interrupted restore is finished (or undone) first, so the restore rolled back is the last one
    recovered = [] if check_mode else place.recover()
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


__all__ = ["PostgresTarget", "backup_info", "restore", "roll_back", "take_backup"]
