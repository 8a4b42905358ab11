"""The ``release`` provider on real directories and symlinks, with real restart commands run as subprocesses."""

from __future__ import annotations

import json
import os
import threading

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_common import SnapshotError
from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_release import HISTORY, ReleaseProvider
from ansible_collections.mttr.recovery.tests.support.processes import run_process
from ansible_collections.mttr.recovery.tests.support.snapshots import link_target, make_releases


def provider(releases_dir, current_link, restart_command=None):
    return ReleaseProvider(releases_dir, current_link, restart_command, run_process)


def history(current_link):
    path = os.path.join(os.path.dirname(current_link), HISTORY)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


@pytest.fixture
def tree(tmp_path):
    """Three releases, the newest current; ``(releases_dir, current_link, marker path for restarts)``."""
    releases_dir, current_link = make_releases(tmp_path, ["1.9.0", "1.10.0", "1.10.1"], current="1.10.1")
    return releases_dir, current_link, str(tmp_path / "restarted")


# ----------------------------------------------------------------------------- state


def test_list_and_current(tree):
    releases_dir, current_link, _marker = tree
    releases = provider(releases_dir, current_link)
    assert releases.current() == "1.10.1"
    assert releases.releases() == ["1.9.0", "1.10.0", "1.10.1"]  # version order, not text order
    assert releases.list() == [
        {"id": "1.9.0", "current": False, "path": os.path.join(releases_dir, "1.9.0")},
        {"id": "1.10.0", "current": False, "path": os.path.join(releases_dir, "1.10.0")},
        {"id": "1.10.1", "current": True, "path": os.path.join(releases_dir, "1.10.1")},
    ]


def test_list_ignores_files_and_hidden_entries(tree):
    releases_dir, current_link, _marker = tree
    open(os.path.join(releases_dir, "notes.txt"), "w").close()
    os.mkdir(os.path.join(releases_dir, ".cache"))
    assert [r["id"] for r in provider(releases_dir, current_link).list()] == ["1.9.0", "1.10.0", "1.10.1"]


def test_mixed_version_names_sort_without_error(tmp_path):
    releases_dir, current_link = make_releases(tmp_path, ["v-legacy", "2.0.0", "2.0.0-hotfix", "10.0"], current="10.0")
    releases = provider(releases_dir, current_link)
    assert releases.releases() == ["2.0.0", "2.0.0-hotfix", "10.0", "v-legacy"]
    assert releases.resolve("previous") == "2.0.0-hotfix"


def test_no_releases_directory(tmp_path):
    releases = provider(str(tmp_path / "nowhere"), str(tmp_path / "current"))
    with pytest.raises(SnapshotError, match=r"no releases directory at .*/nowhere$"):
        releases.list()


# ----------------------------------------------------------------------------- rollback


def test_rollback_to_previous_by_version_order(tree):
    releases_dir, current_link, marker = tree
    result = provider(releases_dir, current_link, ["touch", marker]).rollback("previous")
    assert result["changed"] is True
    assert (result["previous"], result["current"]) == ("1.10.1", "1.10.0")
    assert result["restarted"] is True and os.path.exists(marker)
    assert result["replaced"] == os.path.join(releases_dir, "1.10.1")
    assert result["diff"] == {"before": {"current": "1.10.1"}, "after": {"current": "1.10.0"}}
    assert link_target(current_link) == "1.10.0"
    assert not os.path.isabs(os.readlink(current_link))  # stays relative, like the deploy tool wrote it
    with open(os.path.join(current_link, "VERSION")) as handle:
        assert handle.read() == "1.10.0\n"
    assert [(h["action"], h["why"], h["from"], h["to"]) for h in history(current_link)] == [
        ("switch", "rollback", "1.10.1", "1.10.0")
    ]


def test_rollback_to_previous_from_history(tree):
    """The deploy went 1.9.0 -> 1.10.1 directly: ``previous`` is 1.9.0, not the next older version."""
    releases_dir, current_link, _marker = tree
    releases = provider(releases_dir, current_link)
    releases.activate("1.9.0")
    releases.activate("1.10.1")
    result = releases.rollback("previous")
    assert (result["previous"], result["current"]) == ("1.10.1", "1.9.0")
    assert link_target(current_link) == "1.9.0"


def test_previous_after_a_recorded_deploy(tree):
    """A deploy tool activating an older build: ``previous`` is what was live before that deploy."""
    releases_dir, current_link, _marker = tree
    releases = provider(releases_dir, current_link)
    releases.activate("1.9.0")
    assert [(h["why"], h["from"], h["to"]) for h in history(current_link)] == [("deploy", "1.10.1", "1.9.0")]
    assert releases.rollback("previous")["current"] == "1.10.1"


def test_rollback_to_named_version(tree):
    releases_dir, current_link, marker = tree
    result = provider(releases_dir, current_link, ["touch", marker]).rollback("1.9.0")
    assert result["changed"] is True and result["current"] == "1.9.0"
    assert link_target(current_link) == "1.9.0"
    assert result["msg"] == f"switched {current_link} from 1.10.1 to 1.9.0 and ran the restart command"


def test_rollback_to_unknown_version(tree):
    releases_dir, current_link, _marker = tree
    with pytest.raises(SnapshotError, match=r"release '3\.0\.0' not found in .* \(have: 1\.9\.0, 1\.10\.0, 1\.10\.1\)"):
        provider(releases_dir, current_link).rollback("3.0.0")
    assert link_target(current_link) == "1.10.1"


def test_rollback_to_last_marked(tree):
    releases_dir, current_link, marker = tree
    releases = provider(releases_dir, current_link, ["touch", marker])
    releases.rollback("1.10.0")
    taken = releases.take("validated")
    assert taken == {"changed": True, "snapshot": {"id": "1.10.0"}, "msg": "marked release 1.10.0 as known good"}
    assert releases.take()["changed"] is False  # already marked
    releases.rollback("1.10.1")  # the next deploy turns out bad
    os.unlink(marker)
    result = releases.rollback("last_marked")
    assert (result["previous"], result["current"]) == ("1.10.1", "1.10.0")
    assert link_target(current_link) == "1.10.0" and os.path.exists(marker)
    marks = [h for h in history(current_link) if h["action"] == "mark"]
    assert [(m["release"], m["name"]) for m in marks] == [("1.10.0", "validated")]


def test_last_marked_without_marks(tree):
    releases_dir, current_link, _marker = tree
    with pytest.raises(SnapshotError, match="no release was ever marked known good"):
        provider(releases_dir, current_link).rollback("last_marked")


def test_take_in_check_mode_writes_nothing(tree):
    releases_dir, current_link, _marker = tree
    result = provider(releases_dir, current_link).take(check_mode=True)
    assert result["changed"] is True and result["snapshot"] == {"id": "1.10.1"}
    assert history(current_link) is None


def test_take_with_nothing_deployed(tmp_path):
    releases_dir, current_link = make_releases(tmp_path, ["1.0.0"])
    with pytest.raises(SnapshotError, match="does not exist: nothing is deployed"):
        provider(releases_dir, current_link).take()


def test_already_current_is_no_change(tree):
    releases_dir, current_link, marker = tree
    inode = os.lstat(current_link).st_ino
    result = provider(releases_dir, current_link, ["touch", marker]).rollback("1.10.1")
    assert result["changed"] is False and result["msg"] == "release 1.10.1 is already current"
    assert os.lstat(current_link).st_ino == inode  # the link was not rewritten
    assert not os.path.exists(marker) and history(current_link) is None


def test_check_mode_changes_nothing(tree):
    releases_dir, current_link, marker = tree
    before = os.readlink(current_link)
    inode = os.lstat(current_link).st_ino
    result = provider(releases_dir, current_link, ["touch", marker]).rollback("previous", check_mode=True)
    assert result["changed"] is True and result["restarted"] is False
    assert (result["previous"], result["current"]) == ("1.10.1", "1.10.0")
    assert result["msg"] == f"would switch {current_link} from 1.10.1 to 1.10.0"
    assert os.readlink(current_link) == before and os.lstat(current_link).st_ino == inode
    assert history(current_link) is None
    assert not os.path.exists(marker)
    assert sorted(os.listdir(os.path.dirname(current_link))) == ["current", "releases"]


def test_switch_is_atomic(tree):
    """200 switches while another thread reads ``current`` in a tight loop: it never finds the link missing."""
    releases_dir, current_link, _marker = tree
    releases = provider(releases_dir, current_link)
    seen = {"reads": 0, "errors": [], "targets": set()}
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                seen["targets"].add(os.readlink(current_link))
            except OSError as exc:  # FileNotFoundError would mean a moment without ``current``
                seen["errors"].append(repr(exc))
            seen["reads"] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for index in range(200):
            target = ("1.9.0", "1.10.0")[index % 2]
            old_inode = os.lstat(current_link).st_ino
            releases.switch(target)
            new_inode = os.lstat(current_link).st_ino
            # a new link renamed over the old one (both exist at the rename, so the inodes must differ)
            assert new_inode != old_inode
            assert link_target(current_link) == target
    finally:
        done.set()
        thread.join()
    assert seen["errors"] == []
    assert seen["reads"] > 200, seen["reads"]
    assert {os.path.basename(t) for t in seen["targets"]} <= {"1.9.0", "1.10.0", "1.10.1"}
    assert sorted(os.listdir(os.path.dirname(current_link))) == ["current", "releases"]  # no temporary left


def test_previous_is_idempotent_and_a_rollback_is_undone_by_version(tree):
    releases_dir, current_link, _marker = tree
    releases = provider(releases_dir, current_link)
    first = releases.rollback("previous")
    assert first["current"] == "1.10.0"
    again = releases.rollback("previous")  # already rolled back: asking again changes nothing
    assert again["changed"] is False and link_target(current_link) == "1.10.0"
    undo = releases.rollback(first["previous"])  # the undo names the release it returns to
    assert (undo["previous"], undo["current"]) == ("1.10.0", "1.10.1")
    assert link_target(current_link) == "1.10.1"
    assert [(h["from"], h["to"]) for h in history(current_link)] == [("1.10.1", "1.10.0"), ("1.10.0", "1.10.1")]


def test_restart_failure_keeps_the_switch(tree):
    releases_dir, current_link, _marker = tree
    releases = provider(releases_dir, current_link, ["sh", "-c", "echo service refused to start >&2; exit 3"])
    with pytest.raises(SnapshotError) as info:
        releases.rollback("1.10.0")
    message = str(info.value)
    assert "restart command failed (rc 3)" in message
    assert "service refused to start" in message
    assert "the release switch stays in place" in message
    assert link_target(current_link) == "1.10.0"
    assert [(h["from"], h["to"]) for h in history(current_link)] == [("1.10.1", "1.10.0")]


def test_no_previous_release(tmp_path):
    releases_dir, current_link = make_releases(tmp_path, ["1.0.0", "1.1.0"], current="1.0.0")
    with pytest.raises(SnapshotError, match=r"no release before 1\.0\.0 in .*: nothing to roll back to"):
        provider(releases_dir, current_link).rollback("previous")
    assert link_target(current_link) == "1.0.0"


def test_previous_with_nothing_deployed(tmp_path):
    releases_dir, current_link = make_releases(tmp_path, ["1.0.0", "1.1.0"])
    with pytest.raises(SnapshotError, match="does not exist: nothing is deployed"):
        provider(releases_dir, current_link).rollback("previous")
    assert not os.path.lexists(current_link)


def test_current_as_directory_is_refused(tmp_path):
    releases_dir, current_link = make_releases(tmp_path, ["1.0.0", "1.1.0"])
    os.mkdir(current_link)
    open(os.path.join(current_link, "app.py"), "w").close()
    releases = provider(releases_dir, current_link)
    for call in (releases.list, lambda: releases.rollback("1.0.0"), lambda: releases.rollback("1.0.0", True)):
        with pytest.raises(SnapshotError, match="is not a symlink: refusing to manage it"):
            call()
    assert os.path.isdir(current_link) and not os.path.islink(current_link)
    assert os.listdir(current_link) == ["app.py"]


def test_corrupt_history(tree):
    releases_dir, current_link, _marker = tree
    with open(os.path.join(os.path.dirname(current_link), HISTORY), "w") as handle:
        handle.write("{not json")
    with pytest.raises(SnapshotError, match="is corrupt: fix or remove it"):
        provider(releases_dir, current_link).rollback("previous")


# ----------------------------------------------------------------------------- delete


def test_delete_current_release_refused(tree):
    releases_dir, current_link, _marker = tree
    with pytest.raises(SnapshotError, match=r"release 1\.10\.1 is current: roll back to another one before deleting"):
        provider(releases_dir, current_link).delete("1.10.1")
    assert os.path.isdir(os.path.join(releases_dir, "1.10.1"))


def test_delete_old_release(tree):
    releases_dir, current_link, _marker = tree
    releases = provider(releases_dir, current_link)
    assert releases.delete("1.9.0", check_mode=True)["changed"] is True
    assert os.path.isdir(os.path.join(releases_dir, "1.9.0"))
    assert releases.delete("1.9.0") == {"changed": True, "msg": "deleted release 1.9.0"}
    assert not os.path.exists(os.path.join(releases_dir, "1.9.0"))
    assert releases.delete("1.9.0") == {"changed": False, "msg": "release 1.9.0 does not exist"}


@pytest.mark.parametrize("name", ["..", ".", "", "../releases", ".cache"])
def test_delete_refuses_paths_outside_releases(tree, name):
    releases_dir, current_link, _marker = tree
    os.mkdir(os.path.join(releases_dir, ".cache"))
    with pytest.raises(SnapshotError, match="is not a release name: refusing to delete it"):
        provider(releases_dir, current_link).delete(name)
    assert os.path.isdir(os.path.join(releases_dir, ".cache"))
    assert provider(releases_dir, current_link).releases() == ["1.9.0", "1.10.0", "1.10.1"]
