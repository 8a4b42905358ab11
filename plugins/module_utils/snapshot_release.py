# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``release`` snapshot provider: Capistrano-style ``releases/<version>/`` and ``current``.

A snapshot is a release directory. Rolling back points ``current`` at another release by
writing a new symlink beside it and renaming it over ``current`` (one atomic ``rename``: there is
never a moment without ``current``), then optionally runs a restart command. Every switch is
appended to a history file beside the releases, so ``previous`` means "the release that was
current before this one" and a rollback can itself be undone.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil

from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_common import SnapshotError

HISTORY = ".mttr-release-history.json"


def _version_key(name):
    # (0, number) sorts before (1, text): numeric and textual parts are never compared with each other.
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-_]", name)]


class ReleaseProvider:
    kind = "release"

    def __init__(self, releases_dir, current_link, restart_command=None, run=None):
        self.releases_dir = os.path.abspath(releases_dir)
        self.current_link = os.path.abspath(current_link)
        self.restart_command = restart_command
        self.run = run
        self.history_path = os.path.join(os.path.dirname(self.current_link), HISTORY)

    # ------------------------------------------------------------------ state
    def releases(self):
        try:
            names = [
                name
                for name in os.listdir(self.releases_dir)
                if not name.startswith(".") and os.path.isdir(os.path.join(self.releases_dir, name))
            ]
        except FileNotFoundError:
            raise SnapshotError(f"no releases directory at {self.releases_dir}") from None
        return sorted(names, key=_version_key)

    def current(self):
        try:
            target = os.readlink(self.current_link)
        except FileNotFoundError:
            return None
        except OSError:
            raise SnapshotError(f"{self.current_link} is not a symlink: refusing to manage it") from None
        return os.path.basename(os.path.normpath(target))

    def history(self):
        try:
            with open(self.history_path) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return []
        except ValueError:
            raise SnapshotError(f"{self.history_path} is corrupt: fix or remove it") from None

    def _record(self, entry):
        history = [*self.history(), entry]
        tmp = self.history_path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(history[-200:], handle, indent=2)
        os.replace(tmp, self.history_path)

    def list(self):
        current = self.current()
        return [
            {"id": name, "current": name == current, "path": os.path.join(self.releases_dir, name)}
            for name in self.releases()
        ]

    # ------------------------------------------------------------------ take / delete
    def take(self, name=None, check_mode=False):
        """Record the current release as a known-good point (releases are snapshots already)."""
        current = self.current()
        if current is None:
            raise SnapshotError(f"{self.current_link} does not exist: nothing is deployed")
        last = [h for h in self.history() if h.get("action") == "mark"]
        if last and last[-1]["release"] == current:
            return {"changed": False, "snapshot": {"id": current}, "msg": f"release {current} is already marked"}
        if not check_mode:
            self._record({"action": "mark", "release": current, "name": name, "time": _now()})
        return {"changed": True, "snapshot": {"id": current}, "msg": f"marked release {current} as known good"}

    def delete(self, version, check_mode=False):
        if not version or version in (".", "..") or "/" in version or version.startswith("."):
            raise SnapshotError(f"{version!r} is not a release name: refusing to delete it")
        if version == self.current():
            raise SnapshotError(f"release {version} is current: roll back to another one before deleting it")
        path = os.path.join(self.releases_dir, version)
        if not os.path.isdir(path):
            return {"changed": False, "msg": f"release {version} does not exist"}
        if not check_mode:
            shutil.rmtree(path)
        return {"changed": True, "msg": f"deleted release {version}"}

    # ------------------------------------------------------------------ rollback
    def resolve(self, to):
        """Which release ``to`` names: a version, ``previous`` or ``last_marked``."""
        current = self.current()
        releases = self.releases()
        if to == "previous":
            if current is None:
                raise SnapshotError(f"{self.current_link} does not exist: nothing is deployed, so nothing is previous")
            # "previous" is the release that was current before the last deploy: after a rollback to
            # it, asking again changes nothing (rollbacks themselves are not deploys).
            switches = [h for h in self.history() if h.get("action") == "switch"]
            if switches and switches[-1].get("why") == "rollback" and switches[-1].get("to") == current:
                return current
            deploys = [h for h in switches if h.get("why") != "rollback"]
            if deploys and deploys[-1].get("from") in releases:
                return deploys[-1]["from"]
            older = [r for r in releases if _version_key(r) < _version_key(current)]
            if not older:
                raise SnapshotError(f"no release before {current} in {self.releases_dir}: nothing to roll back to")
            return older[-1]
        if to == "last_marked":
            marks = [h["release"] for h in self.history() if h.get("action") == "mark" and h["release"] in releases]
            if not marks:
                raise SnapshotError("no release was ever marked known good (take a snapshot after a good deploy)")
            return marks[-1]
        if to not in releases:
            raise SnapshotError(f"release {to!r} not found in {self.releases_dir} (have: {', '.join(releases)})")
        return to

    def rollback(self, to="previous", check_mode=False):
        before = self.current()
        target = self.resolve(to)
        diff = {"before": {"current": before}, "after": {"current": target}}
        if target == before:
            return {
                "changed": False,
                "previous": before,
                "current": target,
                "diff": diff,
                "msg": f"release {target} is already current",
            }
        if check_mode:
            return {
                "changed": True,
                "previous": before,
                "current": target,
                "diff": diff,
                "restarted": False,
                "msg": f"would switch {self.current_link} from {before} to {target}",
            }
        self.activate(target, action="rollback")
        result = {
            "changed": True,
            "previous": before,
            "current": target,
            "diff": diff,
            "restarted": False,
            "replaced": os.path.join(self.releases_dir, before) if before else None,
        }
        try:
            result["restarted"] = self.restart()
        except SnapshotError as exc:
            raise SnapshotError(str(exc), result) from None
        result["msg"] = f"switched {self.current_link} from {before} to {target}" + (
            " and ran the restart command" if result["restarted"] else ""
        )
        return result

    def activate(self, version, action="deploy"):
        """Point ``current`` at ``version`` and record the switch (deploy tools call this too)."""
        before = self.current()
        self.switch(version)
        self._record({"action": "switch", "why": action, "from": before, "to": version, "time": _now()})

    def switch(self, version):
        relative = os.path.relpath(os.path.join(self.releases_dir, version), os.path.dirname(self.current_link))
        tmp = f"{self.current_link}.mttr-{os.getpid()}.tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(relative, tmp)
        os.replace(tmp, self.current_link)

    def restart(self):
        if not self.restart_command:
            return False
        rc, out, err = self.run(self.restart_command, None)
        if rc == 127 and (err or "").startswith("cannot run "):
            raise SnapshotError(
                f"switched {self.current_link} but cannot run the restart command {self.restart_command[0]} "
                f"({err.split(': ', 1)[-1]}); the release switch stays in place"
            )
        if rc != 0:
            tail = (err or out).strip().splitlines()
            raise SnapshotError(
                f"switched {self.current_link} but the restart command failed (rc {rc}): "
                f"{tail[-1] if tail else 'no output'}; the release switch stays in place"
            )
        return True


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()
