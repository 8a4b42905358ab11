"""The files backup kind end to end: backup, verified restore by atomic swap, roll back, refusals, crash safety."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.backup_files import (
    DirectoryTarget,
    MemberChecker,
    _feed,
    _Inflating,
    exchange,
    tree_digest,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import (
    backup_info,
    prune_safety_copies,
    restore,
    roll_back,
    safety_copies,
    take_backup,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    MANIFEST,
    BackupError,
    HashingReader,
    LocalRepository,
)
from ansible_collections.mttr.recovery.tests.support.backups import (
    SmallFilesystem,
    build_big_tree,
    build_tree,
    flip_byte,
    member,
    put_raw,
    remove_raw,
    siblings,
    store_backup,
    tar_gz,
    truncate,
)
from ansible_collections.mttr.recovery.tests.support.postgres import give_to_postgres, run_as_postgres


class Scene:
    """A source tree ("new") backed up into ``repo`` and a live target holding another tree ("old")."""

    def __init__(self, repo, root: Path):
        self.repo = repo
        self.source = build_tree(root / "source", "new")
        self.new = tree_digest(self.source)
        self.backup = take_backup(repo, "files", path=str(self.source), source_name="app")["backup"]
        self.target = build_tree(root / "live" / "app", "old")
        self.old = tree_digest(self.target)
        assert self.old != self.new

    def restore(self, **kwargs):
        return restore(self.repo, "files", path=str(self.target), **kwargs)

    def digest(self):
        return tree_digest(self.target)

    def leftovers(self):
        return siblings(self.target)


@pytest.fixture
def scene(repo, tmp_path):
    return Scene(repo, tmp_path)


def modes(root: Path) -> dict:
    return {
        str(path.relative_to(root)): oct(path.lstat().st_mode)
        for path in sorted(root.rglob("*"))
        if not path.name.startswith("only-in-")
    }


# ----------------------------------------------------------------------------- round trips


def test_backup_manifest(scene):
    manifest = scene.backup
    artifact = manifest["artifacts"][0]
    assert manifest["kind"] == "files"
    assert manifest["source"]["name"] == "app"
    assert artifact["name"] == "files.tar.gz"
    assert artifact["compression"] == "gzip"
    assert artifact["members"] > 30
    assert scene.repo.verify(manifest["id"]) == manifest


def test_restore_round_trip_keeps_links_modes_and_a_safety_copy(scene):
    result = scene.restore()
    assert result["changed"] is True
    assert result["backup_id"] == scene.backup["id"]
    assert result["verification"] == "sha256"
    assert result["recovered"] == []
    assert result["bytes"] == scene.backup["artifacts"][0]["size"]
    assert scene.digest() == scene.new
    assert modes(scene.target) == modes(scene.source)

    target = scene.target
    assert os.readlink(target / "current.ini") == "conf/app.ini"
    assert os.readlink(target / "data-link") == "data/deep"
    assert os.readlink(target / "dangling") == "not-there"
    assert (target / "current.ini").read_text() == "[app]\nvariant = new\n"
    assert (target / "conf" / "app.ini").stat().st_ino == (target / "conf" / "app.ini.hardlink").stat().st_ino
    assert (target / "private").stat().st_mode & 0o7777 == 0o700
    assert (target / "private" / "key.pem").stat().st_mode & 0o7777 == 0o600
    assert (target / "shared").stat().st_mode & 0o7777 == 0o2775
    assert (target / "shared" / "group.txt").stat().st_mode & 0o7777 == 0o664
    assert (target / "readonly.txt").stat().st_mode & 0o7777 == 0o444
    assert (target / "bin" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert not (target / "only-in-old.txt").exists()

    safety = result["safety_copy"]
    assert safety and os.path.dirname(safety) == str(target.parent)
    assert tree_digest(safety) == scene.old
    assert scene.leftovers() == [os.path.basename(safety)]
    state = DirectoryTarget(str(target)).state()
    assert state["backup_id"] == scene.backup["id"]
    assert state["safety_copy"] == safety
    assert result["diff"]["before"] == {"target": str(target), "exists": True, "backup_id": None}
    assert result["diff"]["after"]["backup_id"] == scene.backup["id"]


def test_restore_uncompressed_archive(repo, tmp_path):
    source = build_tree(tmp_path / "src", "new")
    backup = take_backup(repo, "files", path=str(source), compression="none")["backup"]
    assert backup["artifacts"][0]["name"] == "files.tar"
    target = tmp_path / "restored"
    result = restore(repo, "files", path=str(target), backup=backup["id"])
    assert result["changed"] is True
    assert tree_digest(target) == tree_digest(source)


def test_check_mode_changes_nothing(scene):
    before = sorted(os.listdir(scene.target.parent))
    result = scene.restore(check_mode=True)
    assert result["changed"] is True
    assert "would restore" in result["msg"]
    assert "safety copy" in result["msg"]
    assert scene.digest() == scene.old
    assert sorted(os.listdir(scene.target.parent)) == before
    assert scene.leftovers() == []

    absent = scene.target.parent / "absent"
    result = restore(scene.repo, "files", path=str(absent), check_mode=True)
    assert result["changed"] is True
    assert not absent.exists()


def test_second_restore_is_unchanged_and_force_restores_again(scene):
    first = scene.restore()
    second = scene.restore()
    assert second["changed"] is False
    assert "already holds backup" in second["msg"]
    assert second["safety_copy"] is None
    assert scene.digest() == scene.new
    assert scene.restore(check_mode=True)["changed"] is False

    (scene.target / "conf" / "app.ini").write_text("drifted\n")
    forced = scene.restore(force=True)
    assert forced["changed"] is True
    assert scene.digest() == scene.new
    # the forced restore's safety copy is the drifted tree; the first one is still there, untouched
    assert forced["safety_copy"] != first["safety_copy"]
    assert Path(forced["safety_copy"], "conf", "app.ini").read_text() == "drifted\n"
    assert tree_digest(first["safety_copy"]) == scene.old
    assert not [name for name in scene.leftovers() if "staging" in name]


def test_a_target_changed_after_its_restore_is_restored_again(scene):
    """'Already holds backup X' is proven from the tree, not taken from the marker beside it."""
    scene.restore()
    lost = scene.target / "data" / "row-03.txt"
    lost.unlink()  # a second data loss after the restore
    check = scene.restore(check_mode=True)
    assert check["changed"] is True
    assert "would restore" in check["msg"]
    assert not lost.exists()
    again = scene.restore()
    assert again["changed"] is True
    assert scene.digest() == scene.new
    assert scene.restore()["changed"] is False

    # the same size and mtime, other bytes: still a change
    row = scene.target / "data" / "row-04.txt"
    info = row.stat()
    row.write_text(row.read_text().upper())
    os.utime(row, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert scene.restore()["changed"] is True
    assert scene.digest() == scene.new
    assert scene.restore()["changed"] is False


def test_a_marker_without_proof_is_not_trusted(scene):
    """A marker written before the tree's fingerprint was recorded proves nothing: restore again."""
    scene.restore()
    place = DirectoryTarget(str(scene.target))
    state = place.state()
    state.pop("fingerprint")
    place.write_json(place.marker, state)
    result = scene.restore()
    assert result["changed"] is True
    assert scene.restore()["changed"] is False


def test_restore_into_a_missing_target(repo, tmp_path):
    source = build_tree(tmp_path / "src", "new")
    take_backup(repo, "files", path=str(source))
    target = tmp_path / "does" / "not" / "exist"
    result = restore(repo, "files", path=str(target))
    assert result["changed"] is True
    assert result["safety_copy"] is None
    assert result["diff"]["before"]["exists"] is False
    assert tree_digest(target) == tree_digest(source)
    assert siblings(target) == []
    assert restore(repo, "files", path=str(target))["changed"] is False
    # nothing to put back: the target did not exist before
    with pytest.raises(BackupError, match=r"safety copy .*the target did not exist before the restore"):
        roll_back("files", path=str(target))
    assert tree_digest(target) == tree_digest(source)


def test_roll_back_returns_the_old_tree_and_keeps_the_undone_one(scene):
    scene.restore()
    check = roll_back("files", check_mode=True, path=str(scene.target))
    assert check["changed"] is True
    assert scene.digest() == scene.new

    result = roll_back("files", path=str(scene.target))
    assert result["changed"] is True
    assert scene.digest() == scene.old
    assert tree_digest(result["undone_copy"]) == scene.new
    assert result["diff"]["before"]["backup_id"] == scene.backup["id"]
    state = DirectoryTarget(str(scene.target)).state()
    assert state["rolled_back"] is True
    assert state["safety_copy"] is None

    again = roll_back("files", path=str(scene.target))
    assert again["changed"] is False
    assert scene.digest() == scene.old

    # after a roll back the same backup can be restored again
    redo = scene.restore()
    assert redo["changed"] is True
    assert redo["diff"]["before"]["backup_id"] is None
    assert scene.digest() == scene.new
    assert tree_digest(redo["safety_copy"]) == scene.old


def test_roll_back_with_nothing_to_roll_back(tmp_path):
    target = build_tree(tmp_path / "app", "old")
    digest = tree_digest(target)
    result = roll_back("files", path=str(target))
    assert result["changed"] is False
    assert "has no restore to roll back" in result["msg"]
    assert roll_back("files", check_mode=True, path=str(target))["changed"] is False
    assert tree_digest(target) == digest
    assert siblings(target) == []


# ----------------------------------------------------------------------------- safety copies


def test_safety_copies_are_listed_and_pruned_keeping_the_newest(scene):
    results = [scene.restore(force=True) for _attempt in range(3)]
    made = [result["safety_copy"] for result in results]
    copies = safety_copies("files", path=str(scene.target))
    assert [copy["path"] for copy in copies] == made  # oldest first
    assert [copy["kind"] for copy in copies] == ["pre_restore"] * 3
    assert [copy["current"] for copy in copies] == [False, False, True]
    assert all(copy["created"].endswith("Z") for copy in copies)
    assert backup_info(scene.repo, path=str(scene.target))["safety_copies"] == copies

    check = prune_safety_copies("files", 1, check_mode=True, path=str(scene.target))
    assert check["changed"] is True
    assert check["removed"] == made[:2]
    assert check["kept"] == made[2:]
    assert check["diff"] == {
        "before": {"target": str(scene.target), "safety_copies": made},
        "after": {"target": str(scene.target), "safety_copies": made[2:]},
    }
    assert all(os.path.isdir(path) for path in made)

    result = prune_safety_copies("files", 1, path=str(scene.target))
    assert result["changed"] is True
    assert result["removed"] == made[:2]
    assert scene.leftovers() == [os.path.basename(made[2])]
    again = prune_safety_copies("files", 1, path=str(scene.target))
    assert again["changed"] is False and again["removed"] == []

    # the copy the last restore made survived: its roll back still works
    assert roll_back("files", path=str(scene.target))["changed"] is True
    assert scene.digest() == scene.new  # the forced restores each kept the previous (new) tree


def test_pruning_keeps_the_current_copy_and_counts_undone_copies(scene):
    first = scene.restore()
    rolled = roll_back("files", path=str(scene.target))
    second = scene.restore()
    copies = safety_copies("files", path=str(scene.target))
    assert [(copy["kind"], copy["current"]) for copy in copies] == [("undone", False), ("pre_restore", True)]
    assert [copy["path"] for copy in copies] == [rolled["undone_copy"], second["safety_copy"]]
    assert first["changed"] is True

    # a newer copy than the current one (a clock step, a copy made by hand): the current one is kept
    newer = Path(f"{scene.target}.mttr-pre-restore-20991231T235959Z-abcdef")
    newer.mkdir()
    result = prune_safety_copies("files", 1, path=str(scene.target))
    assert result["kept"] == [second["safety_copy"]]
    assert sorted(result["removed"]) == sorted([rolled["undone_copy"], str(newer)])
    assert scene.leftovers() == [os.path.basename(second["safety_copy"])]

    # keep 0 removes them all, the current one too (roll back then says it is gone)
    assert prune_safety_copies("files", 0, path=str(scene.target))["removed"] == [second["safety_copy"]]
    assert scene.leftovers() == []
    with pytest.raises(BackupError, match=r"its safety copy .* is gone"):
        roll_back("files", path=str(scene.target))
    assert scene.digest() == scene.new


def test_pruning_removes_read_only_trees_and_half_removed_copies(scene):
    scene.restore(force=True)
    last = scene.restore(force=True)
    copies = safety_copies("files", path=str(scene.target))
    old = Path(copies[0]["path"])
    (old / "locked").mkdir()
    (old / "locked" / "f").write_text("x")
    (old / "locked").chmod(0o500)
    half = Path(f"{scene.target}.mttr-removing-20261123T120102Z-abcdef")  # a prune killed half-way
    half.mkdir()
    result = prune_safety_copies("files", 1, path=str(scene.target))
    assert result["removed"] == [str(old)]
    assert scene.leftovers() == [os.path.basename(last["safety_copy"])]


def test_safety_copies_of_a_target_without_any(tmp_path):
    target = build_tree(tmp_path / "app", "old")
    assert safety_copies("files", path=str(target)) == []
    result = prune_safety_copies("files", 1, path=str(target))
    assert result["changed"] is False
    (tmp_path / "app.mttr-pre-restore-not-a-stamp").mkdir()  # not one of ours: never touched
    (tmp_path / "other.mttr-pre-restore-20261123T120102Z-abcdef").mkdir()
    assert safety_copies("files", path=str(target)) == []
    assert prune_safety_copies("files", 0, path=str(target))["removed"] == []
    assert (tmp_path / "app.mttr-pre-restore-not-a-stamp").is_dir()


def test_a_failure_after_a_clean_up_still_says_it_changed(scene):
    target = DirectoryTarget(str(scene.target))
    staging = target.sibling("staging", scene.backup["id"])
    os.mkdir(staging)
    flip_byte(scene.repo, scene.backup["id"], "files.tar.gz")
    with pytest.raises(BackupError, match="the backup is corrupt") as raised:
        scene.restore()
    assert raised.value.result["changed"] is True
    assert raised.value.result["recovered"] == [f"removed the leftover staging directory {staging}"]
    assert scene.digest() == scene.old


def test_check_mode_restore_says_how_long_it_took(scene):
    result = scene.restore(check_mode=True)
    assert isinstance(result["duration_s"], float)
    scene.restore()
    assert isinstance(scene.restore()["duration_s"], float)


# ----------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_fs():
    try:
        filesystem = SmallFilesystem(4)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    yield filesystem
    filesystem.unmount()


def big_source(tmp_path, megabytes=6):
    source = tmp_path / "big"
    (source / "blobs").mkdir(parents=True)
    for index in range(megabytes):
        (source / "blobs" / f"blob-{index}.bin").write_bytes(os.urandom(1024 * 1024))
    (source / "small.txt").write_text("small")
    return source


def test_a_restore_the_disk_has_no_room_for_is_refused_before_it_starts(repo, tmp_path, small_fs):
    source = big_source(tmp_path)
    backup = take_backup(repo, "files", path=str(source))["backup"]
    assert backup["artifacts"][0]["unpacked_size"] >= 6 * 1024 * 1024
    target = build_tree(small_fs.path / "app", "old")
    digest = tree_digest(target)
    for check_mode in (True, False):
        with pytest.raises(BackupError) as raised:
            restore(repo, "files", path=str(target), check_mode=check_mode)
        message = str(raised.value)
        assert f"not enough space on {small_fs.path} (tmpfs)" in message, message
        assert "MiB needed" in message and "MiB free" in message
        assert "nothing was changed" in message
        assert "\n" not in message
    assert tree_digest(target) == digest
    assert siblings(target) == []


def without_unpacked_size(repo, backup):
    artifact = {k: v for k, v in backup["artifacts"][0].items() if k != "unpacked_size"}
    repo.write_manifest(backup["id"], dict(backup, artifacts=[artifact]))


@pytest.mark.parametrize("how", ["check disabled", "older manifest"])
def test_a_disk_that_fills_up_during_the_restore_is_reported_as_full(repo, tmp_path, small_fs, how):
    source = big_source(tmp_path)
    backup = take_backup(repo, "files", path=str(source))["backup"]
    options = {}
    if how == "check disabled":
        options["check_free_space"] = False
    else:
        without_unpacked_size(repo, backup)
    target = build_tree(small_fs.path / "app", "old")
    digest = tree_digest(target)
    with pytest.raises(BackupError) as raised:
        restore(repo, "files", path=str(target), **options)
    message = str(raised.value)
    assert f"{small_fs.path} (tmpfs) is full" in message, message
    assert "No space left on device" in message  # tar's own error lines
    assert "Exiting with failure status" not in message
    assert "MiB needed" in message and "MiB were free" in message
    assert "the target is untouched" in message
    assert "\n" not in message
    assert tree_digest(target) == digest
    assert siblings(target) == []
    assert small_fs.free() > 3 * 1024 * 1024  # the staging directory is gone


def test_take_backup_check_mode_and_refusals(repo, tmp_path):
    source = build_tree(tmp_path / "src", "new")
    result = take_backup(repo, "files", check_mode=True, path=str(source))
    assert result["changed"] is True
    assert result["backup"]["kind"] == "files"
    assert repo.list_ids() == []
    with pytest.raises(BackupError, match="is not a directory"):
        take_backup(repo, "files", path=str(tmp_path / "nowhere"))
    with pytest.raises(BackupError, match="no complete files backup"):
        restore(repo, "files", path=str(tmp_path / "target"))


# ----------------------------------------------------------------------------- refusals


def damage_flip(scene):
    flip_byte(scene.repo, scene.backup["id"], "files.tar.gz")
    return "has sha256 .*the backup is corrupt"


def damage_truncate(scene):
    truncate(scene.repo, scene.backup["id"], "files.tar.gz", keep=0.5)
    return "the backup is truncated or corrupt"


def damage_missing_artifact(scene):
    remove_raw(scene.repo, scene.backup["id"], "files.tar.gz")
    return "artifact files.tar.gz is missing"


def damage_missing_manifest(scene):
    remove_raw(scene.repo, scene.backup["id"], MANIFEST)
    return "has no manifest: it is incomplete"


def damage_wrong_sha(scene):
    artifact = dict(scene.backup["artifacts"][0], sha256="0" * 64)
    scene.repo.write_manifest(scene.backup["id"], dict(scene.backup, artifacts=[artifact]))
    return "has sha256 .*the manifest says 0000000000000000"


def damage_wrong_size(scene):
    artifact = dict(scene.backup["artifacts"][0], size=scene.backup["artifacts"][0]["size"] + 1)
    scene.repo.write_manifest(scene.backup["id"], dict(scene.backup, artifacts=[artifact]))
    return "the backup is truncated or corrupt"


def damage_other_id(scene):
    scene.repo.write_manifest(scene.backup["id"], dict(scene.backup, id="20200101T000000Z-files-abcdef"))
    return "the manifest names another backup"


def damage_bad_json(scene):
    put_raw(scene.repo, scene.backup["id"], MANIFEST, b'{"id": "truncated')
    return "the manifest is not valid JSON"


@pytest.mark.parametrize(
    "damage",
    [
        damage_flip,
        damage_truncate,
        damage_missing_artifact,
        damage_missing_manifest,
        damage_wrong_sha,
        damage_wrong_size,
        damage_other_id,
        damage_bad_json,
    ],
    ids=lambda f: f.__name__[len("damage_") :],
)
def test_damaged_backups_are_refused_and_the_target_is_untouched(scene, damage):
    message = damage(scene)
    before = sorted(os.listdir(scene.target.parent))
    with pytest.raises(BackupError, match=message):
        scene.restore(backup=scene.backup["id"])
    assert scene.digest() == scene.old
    assert scene.leftovers() == []
    assert sorted(os.listdir(scene.target.parent)) == before
    assert DirectoryTarget(str(scene.target)).state() == {}


def test_latest_skips_a_backup_without_manifest(scene):
    remove_raw(scene.repo, scene.backup["id"], MANIFEST)
    with pytest.raises(BackupError, match=r"no complete files backup of app .*\(1 incomplete or unreadable"):
        restore(scene.repo, "files", path=str(scene.target), source_name="app")
    assert scene.digest() == scene.old


ESCAPE = Path("/tmp") / f"mttr-escape-{uuid.uuid4().hex[:10]}"
UP = "../" * 12


def unsafe_cases():
    """(id, members, the member the refusal must name, the message) for crafted archives."""
    ok = member("ok.txt", data=b"fine")
    folder = member("sub", tarfile.DIRTYPE, mode=0o755)
    return [
        ("absolute", [ok, member(f"{ESCAPE}/abs.txt", data=b"x")], f"{ESCAPE}/abs.txt", "absolute path"),
        (
            "dotdot",
            [ok, member(f"{UP}{ESCAPE.relative_to('/')}/up.txt", data=b"x")],
            f"{UP}{ESCAPE.relative_to('/')}/up.txt",
            "contains '..'",
        ),
        ("inner-dotdot", [ok, folder, member("sub/../../escape.txt", data=b"x")], "sub/../../escape.txt", "'..'"),
        ("symlink-up", [ok, member("passwd", tarfile.SYMTYPE, "../../etc/passwd")], "passwd", "outside the target"),
        (
            "symlink-deep",
            [ok, folder, member("sub/out", tarfile.SYMTYPE, f"{UP}{ESCAPE.relative_to('/')}"), member("sub/out/x")],
            "sub/out",
            "outside the target",
        ),
        (
            "symlink-absolute",
            [ok, member("abs", tarfile.SYMTYPE, str(ESCAPE)), member("abs/pwned.txt", data=b"x")],
            "abs",
            "outside the target",
        ),
        ("symlink-etc", [ok, member("shadow", tarfile.SYMTYPE, "/etc/shadow")], "shadow", "outside the target"),
        ("hardlink-absolute", [ok, member("hl", tarfile.LNKTYPE, "/etc/passwd")], "hl", "hard link outside"),
        ("hardlink-up", [ok, member("hl2", tarfile.LNKTYPE, "../../../etc/passwd")], "hl2", "hard link outside"),
        ("device", [ok, member("null", tarfile.CHRTYPE)], "null", "device, FIFO or other special file"),
        ("block-device", [ok, member("disk", tarfile.BLKTYPE)], "disk", "device, FIFO or other special file"),
        ("fifo", [ok, member("pipe", tarfile.FIFOTYPE)], "pipe", "device, FIFO or other special file"),
    ]


@pytest.mark.parametrize(
    ("members", "name", "message"), [case[1:] for case in unsafe_cases()], ids=[case[0] for case in unsafe_cases()]
)
def test_unsafe_archives_are_refused(tmp_path, members, name, message):
    repo = LocalRepository(tmp_path / "repo")
    target = build_tree(tmp_path / "live" / "app", "old")
    digest = tree_digest(target)
    passwd = os.stat("/etc/passwd")
    backup = store_backup(repo, "files", {"files.tar.gz": tar_gz(members)}, compression="gzip")
    around = sorted(os.listdir(tmp_path))
    assert repo.verify(backup["id"]) == backup  # the archive itself is intact: only the safety check can refuse

    with pytest.raises(BackupError, match="archive member") as info:
        restore(repo, "files", path=str(target), backup=backup["id"])
    assert repr(name) in str(info.value)
    assert message in str(info.value)
    assert "refused" in str(info.value)

    assert tree_digest(target) == digest
    assert siblings(target) == []
    assert sorted(os.listdir(tmp_path)) == around
    assert sorted(os.listdir(target.parent)) == ["app"]
    assert not ESCAPE.exists()
    assert not Path("/tmp/escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()
    after = os.stat("/etc/passwd")
    assert (after.st_nlink, after.st_mtime_ns, after.st_size) == (passwd.st_nlink, passwd.st_mtime_ns, passwd.st_size)


def test_symlink_chain_escape_is_refused(tmp_path):
    """Links that each look inside but resolve outside through an earlier link: ``c -> sub/..``, ``a -> c/../x``."""
    live = tmp_path / "live"
    target = build_tree(live / "app", "old")
    digest = tree_digest(target)
    repository = LocalRepository(tmp_path / "repo")
    archive = tar_gz(
        [
            member("sub", tarfile.DIRTYPE, mode=0o755),
            member("c", tarfile.SYMTYPE, "sub/.."),
            member("a", tarfile.SYMTYPE, "c/../app"),  # physically: the live target beside the staging directory
            member("a/pwned.txt", data=b"owned"),
        ]
    )
    backup = store_backup(repository, "files", {"files.tar.gz": archive}, compression="gzip")
    with pytest.raises(BackupError, match="'a'"):
        restore(repository, "files", path=str(target), backup=backup["id"])
    assert not (target / "pwned.txt").exists()
    assert tree_digest(target) == digest
    assert siblings(target) == []


def test_member_checker_resolves_links_the_archive_created_earlier():
    """Links are followed through the symlinks earlier members made (in memory: the extractor runs behind)."""
    checker = MemberChecker()
    checker.check(member("sub", tarfile.DIRTYPE)[0])
    checker.check(member("c", tarfile.SYMTYPE, "sub/..")[0])  # c is the root itself: inside
    with pytest.raises(BackupError, match=re.escape("'a' is a symlink to 'c/../victim', outside the target")):
        checker.check(member("a", tarfile.SYMTYPE, "c/../victim")[0])
    checker.check(member("up", tarfile.SYMTYPE, "sub")[0])
    checker.check(member("up/fine.txt", data=b"x")[0])  # written into sub/
    checker.check(member("loop", tarfile.SYMTYPE, "loop2")[0])
    checker.check(member("loop2", tarfile.SYMTYPE, "loop")[0])
    with pytest.raises(BackupError, match=re.escape("'loop/x' leaves the target")):
        checker.check(member("loop/x", data=b"x")[0])
    with pytest.raises(BackupError, match="hard link outside"):
        checker.check(member("h", tarfile.LNKTYPE, "c/../../etc/passwd")[0])
    checker.check(member("c", data=b"now a file")[0])  # a file replaces the link
    assert "c" not in checker.links
    with pytest.raises(BackupError, match="device, FIFO"):
        MemberChecker().check(member("fifo", tarfile.FIFOTYPE)[0])


class RecordingExtractor:
    """Stands in for tar's process in _feed: keeps every byte the engine passes on, and says rc 0."""

    def __init__(self):
        self.stdin = io.BytesIO()
        self.stdin.close = lambda: None  # _feed closes stdin when done; keep what was written

    def wait(self):
        return 0


@pytest.mark.parametrize(
    "unsafe",
    [
        member("evil", tarfile.SYMTYPE, "/etc"),
        member("sub/../../escape.txt", data=b"x"),
        member("dev", tarfile.CHRTYPE),
    ],
    ids=["absolute-symlink", "dotdot", "device"],
)
def test_no_byte_of_an_unchecked_member_reaches_the_extractor(unsafe):
    """The tee holds back everything past the last member that passed its check."""
    big = os.urandom(300_000)  # larger than tarfile's read-ahead: its data flows while it is read
    archive = tar_gz([member("ok.txt", data=big), unsafe, member("after.txt", data=b"never")])
    extractor = RecordingExtractor()
    with pytest.raises(BackupError, match="refused"):
        _feed(_Inflating(HashingReader(io.BytesIO(archive)), "gzip"), extractor)
    passed = extractor.stdin.getvalue()
    assert big in passed  # the checked member went through whole
    # outside its random data, which holds a short name like "dev" about once in fifty runs
    headers = passed.replace(big, b"")
    assert unsafe[0].name.encode() not in headers and b"after.txt" not in headers
    # what went through is the checked member and nothing else: tar would see ok.txt only
    with tarfile.open(fileobj=io.BytesIO(passed + b"\0" * 1024), mode="r|") as tar:
        assert [info.name for info in tar] == ["ok.txt"]


# ----------------------------------------------------------------------------- as an unprivileged user

UNPRIVILEGED = """
import json, sys
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import restore
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import BackupError, LocalRepository

try:
    result = restore(LocalRepository(sys.argv[1]), "files", path=sys.argv[2], backup=sys.argv[3])
    print(json.dumps({"changed": result["changed"]}))
except BackupError as exc:
    print(json.dumps({"error": str(exc)}))
"""


@pytest.fixture
def shared_dir():
    """A directory the ``postgres`` user can reach (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="mttr-files-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_unprivileged_restore_of_read_only_directories(shared_dir):
    """Directory modes are applied last: a 0555 directory still receives its files (no root to bypass them)."""
    source = shared_dir / "source"
    (source / "locked" / "sub").mkdir(parents=True)
    (source / "locked" / "sub" / "inside.txt").write_text("inside")
    (source / "locked" / "file.txt").write_text("file")
    (source / "plain.txt").write_text("plain")
    (source / "locked" / "sub").chmod(0o500)
    (source / "locked").chmod(0o555)
    repository = LocalRepository(shared_dir / "repo")
    backup = take_backup(repository, "files", path=str(source))["backup"]
    live = shared_dir / "live"
    live.mkdir()
    give_to_postgres(shared_dir / "repo", live)

    result = run_as_postgres(UNPRIVILEGED, repository.root, live / "app", backup["id"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"changed": True}
    assert tree_digest(live / "app") == tree_digest(source)
    assert (live / "app" / "locked").stat().st_mode & 0o7777 == 0o555
    assert (live / "app" / "locked" / "sub").stat().st_mode & 0o7777 == 0o500
    assert (live / "app" / "plain.txt").stat().st_uid == (live / "app").stat().st_uid != 0


def test_symlink_chain_is_refused_without_tarfile_data_filter(shared_dir):
    """On a Python without tarfile's data filter, the engine's own checks must stop the escape."""
    live = shared_dir / "live"
    target = build_tree(live / "app", "old")
    digest = tree_digest(target)
    repository = LocalRepository(shared_dir / "repo")
    archive = tar_gz(
        [
            member("sub", tarfile.DIRTYPE, mode=0o755),
            member("c", tarfile.SYMTYPE, "sub/.."),
            member("a", tarfile.SYMTYPE, "c/../app"),
            member("a/pwned.txt", data=b"owned"),
        ]
    )
    backup = store_backup(repository, "files", {"files.tar.gz": archive}, compression="gzip")
    give_to_postgres(shared_dir / "repo", live)

    result = run_as_postgres(UNPRIVILEGED, repository.root, target, backup["id"])
    assert result.returncode == 0, result.stderr
    error = json.loads(result.stdout)["error"]
    assert "archive member 'a' is a symlink to 'c/../app', outside the target" in error
    assert not (target / "pwned.txt").exists()
    assert tree_digest(target) == digest
    assert siblings(target) == []


# ----------------------------------------------------------------------------- journal recovery


def staged(tmp_path, with_old=True):
    """A target with the old tree and a staging directory with the new one, as restore leaves them."""
    target = DirectoryTarget(str(tmp_path / "app"))
    if with_old:
        build_tree(target.path, "old")
    staging = target.sibling("staging", "20261123T120102Z-files-abc123")
    build_tree(staging, "new")
    safety = target.sibling("pre-restore", "20261123T120102Z-files-abc123")
    marker = {"backup_id": "20261123T120102Z-files-abc123", "restored_at": "now", "safety_copy": safety}
    journal = {"new_inode": os.stat(staging).st_ino, "staging": staging, "safety": safety, "marker": marker}
    target.write_json(target.journal, journal)
    return target, staging, safety, tree_digest(target.path), tree_digest(staging)


def test_recover_finishes_a_swap_interrupted_after_the_exchange(tmp_path):
    target, staging, safety, old, new = staged(tmp_path)
    assert exchange(staging, target.path) is True
    assert tree_digest(target.path) == new  # already the new tree: recovery must keep it

    done = target.recover()
    assert done == ["finished an interrupted restore of backup 20261123T120102Z-files-abc123"]
    assert tree_digest(target.path) == new
    assert tree_digest(safety) == old
    assert not os.path.exists(staging)
    assert not os.path.exists(target.journal)
    assert target.state()["safety_copy"] == safety
    assert target.recover() == []
    # and roll back works from there
    undone = target.roll_back()
    assert tree_digest(target.path) == old
    assert tree_digest(undone) == new


def test_recover_after_the_old_tree_was_moved_to_the_safety_copy(tmp_path):
    target, staging, safety, old, new = staged(tmp_path)
    assert exchange(staging, target.path) is True
    os.rename(staging, safety)  # killed before the marker was written
    assert target.recover() == ["finished an interrupted restore of backup 20261123T120102Z-files-abc123"]
    assert tree_digest(target.path) == new
    assert tree_digest(safety) == old
    assert target.state()["backup_id"] == "20261123T120102Z-files-abc123"


def test_recover_finishes_the_rename_fallback(tmp_path):
    """Without renameat2 the swap is two renames: killed between them, the target path is missing."""
    target, _staging, safety, old, new = staged(tmp_path)
    os.rename(target.path, safety)
    assert target.recover() == ["finished an interrupted restore of backup 20261123T120102Z-files-abc123"]
    assert tree_digest(target.path) == new
    assert tree_digest(safety) == old


def test_recover_discards_a_restore_that_swapped_nothing(tmp_path):
    target, staging, safety, old, _new = staged(tmp_path)
    done = target.recover()
    assert done == [
        "discarded an interrupted restore that had not swapped anything in",
        f"removed the leftover staging directory {staging}",
    ]
    assert tree_digest(target.path) == old
    assert not os.path.exists(staging)
    assert not os.path.exists(safety)
    assert not os.path.exists(target.journal)
    assert target.state() == {}


def test_restore_reports_what_it_recovered(scene):
    target = DirectoryTarget(str(scene.target))
    staging = target.sibling("staging", scene.backup["id"])
    os.mkdir(staging)
    (Path(staging) / "half-written").write_text("x")
    result = scene.restore()
    assert result["recovered"] == [f"removed the leftover staging directory {staging}"]
    assert scene.digest() == scene.new
    assert scene.leftovers() == [os.path.basename(result["safety_copy"])]


def test_restore_finishes_an_interrupted_restore_of_the_same_backup(scene):
    """Killed after the exchange, before the marker: the next restore finishes it and keeps the old tree."""
    target = DirectoryTarget(str(scene.target))
    staging = target.sibling("staging", scene.backup["id"])
    shutil.copytree(scene.source, staging, symlinks=True)
    safety = target.sibling("pre-restore", scene.backup["id"])
    marker = {"backup_id": scene.backup["id"], "restored_at": "now", "safety_copy": safety}
    journal = {"new_inode": os.stat(staging).st_ino, "staging": staging, "safety": safety, "marker": marker}
    target.write_json(target.journal, journal)
    assert exchange(staging, target.path)

    result = scene.restore()
    assert result["changed"] is True
    assert result["recovered"] == [f"finished an interrupted restore of backup {scene.backup['id']}"]
    assert result["safety_copy"] == safety
    assert scene.digest() == scene.new
    assert tree_digest(safety) == scene.old
    assert roll_back("files", path=str(scene.target))["changed"] is True
    assert scene.digest() == scene.old


def test_corrupt_journal_is_reported(tmp_path):
    target = DirectoryTarget(str(build_tree(tmp_path / "app", "old")))
    Path(target.journal).write_text("{broken")
    with pytest.raises(BackupError, match=r"mttr-journal\.json is corrupt: inspect it"):
        target.recover()


# ----------------------------------------------------------------------------- killed restores

CHILD = """
import sys
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import restore
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import LocalRepository

repository = LocalRepository(sys.argv[1])
print("ready", flush=True)
result = restore(repository, "files", path=sys.argv[2])
print("done", result["changed"], flush=True)
"""


class KillScene:
    """An old tree in place and a backup of a new one (many small files and a few big ones)."""

    def __init__(self, root: Path):
        self.repo = LocalRepository(root / "repo")
        source = build_big_tree(root / "source", "new", small=400, big=4, big_mb=4)
        self.new = tree_digest(source)
        self.backup = take_backup(self.repo, "files", path=str(source))["backup"]
        shutil.rmtree(source)
        self.target = build_big_tree(root / "live" / "app", "old", small=300, big=3, big_mb=4)
        self.old = tree_digest(self.target)
        self.place = DirectoryTarget(str(self.target))

    def reset(self, safety: str):
        """Put the old tree back (from the verified safety copy), with nothing beside it."""
        shutil.rmtree(self.target)
        os.rename(safety, self.target)
        os.unlink(self.place.marker)
        assert siblings(self.target) == []

    def staging_has(self, relative: str) -> bool:
        return any(os.path.lexists(os.path.join(path, relative)) for path in self.place.stale_staging())

    def run_child(self, delay: float | None = None, until=None):
        """Run a restore in a child process; SIGKILL it after ``delay`` seconds or once ``until()`` is true.

        With neither, let it finish and return how long it took.
        """
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, self.repo.root, str(self.target)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "ready"
        started = time.monotonic()
        if delay is None and until is None:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            assert out.strip() == "done True"
            return time.monotonic() - started
        deadline = started + (delay if delay is not None else 60)
        while child.poll() is None and time.monotonic() < deadline and not (until and until()):
            time.sleep(0.0005)
        child.kill()
        child.communicate(timeout=30)
        return None


def test_a_restore_killed_at_any_point_leaves_old_or_new_and_resumes(tmp_path):
    scene = KillScene(tmp_path)
    place = scene.place
    old_inode = os.stat(scene.target).st_ino
    runs = [(f"after {delay}s", {"delay": delay}, None) for delay in (0.01, 0.08, 0.2, 0.4, 0.7, 1.2)]
    # phases of the restore, seen from outside: kills right after each, whatever the machine's speed
    runs += [
        ("staging created", {"until": lambda: bool(place.stale_staging())}, None),
        ("big files extracted", {"until": lambda: scene.staging_has("blobs/big-3.bin")}, None),
        ("small files extracted", {"until": lambda: scene.staging_has("d002")}, None),
        ("extraction done", {"until": lambda: scene.staging_has("marker.txt")}, None),
        ("journal written", {"until": lambda: os.path.exists(place.journal)}, None),
        ("exchanged", {"until": lambda: os.stat(scene.target).st_ino != old_inode}, "new"),
        ("old tree moved aside", {"until": lambda: any("pre-restore" in n for n in siblings(scene.target))}, "new"),
        ("marker written", {"until": lambda: os.path.exists(place.marker)}, "new"),
        ("finished", {}, "new"),
    ]
    outcomes = {}
    for label, kill, expected in runs:
        assert tree_digest(scene.target) == scene.old
        scene.run_child(**kill)
        pending = os.path.exists(place.journal) or bool(place.stale_staging())
        after_kill = tree_digest(scene.target)
        assert after_kill in (scene.old, scene.new), f"killed {label}: the target is neither the old nor the new tree"
        outcome = "new" if after_kill == scene.new else "old"
        assert expected in (None, outcome), f"killed {label}: the target is the {outcome} tree"
        outcomes[label] = (outcome, pending)

        result = restore(scene.repo, "files", path=str(scene.target))
        assert tree_digest(scene.target) == scene.new
        if pending:
            assert result["recovered"], f"killed {label}: nothing reported as recovered"
            assert all(line.startswith(("finished", "discarded", "removed")) for line in result["recovered"])
            if outcome == "new":
                assert result["recovered"][0].startswith("finished an interrupted restore"), result["recovered"]
        else:
            assert result["recovered"] == []
        safety = result["safety_copy"] or place.state().get("safety_copy")
        assert safety and tree_digest(safety) == scene.old, f"killed {label}: the safety copy is not the old tree"
        assert not place.stale_staging()
        assert not os.path.exists(place.journal)
        assert siblings(scene.target) == [os.path.basename(safety)]
        scene.reset(safety)
    assert {outcome for outcome, _pending in outcomes.values()} == {"old", "new"}, outcomes
    assert any(pending for _outcome, pending in outcomes.values()), outcomes
