"""Helpers for the snapshot provider tests: release trees as Capistrano lays them out, a canned-output runner."""

from __future__ import annotations

import os
from pathlib import Path

from ansible_collections.mttr.recovery.tests.support.processes import run_process


def make_releases(root, versions, current=None):
    """``root/releases/<version>/`` (each with a VERSION file) and ``root/current`` -> ``releases/<current>``.

    Returns ``(releases_dir, current_link)`` as strings. The link is relative, as Capistrano writes it.
    """
    root = Path(root)
    releases = root / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    for version in versions:
        (releases / version).mkdir()
        (releases / version / "VERSION").write_text(version + "\n")
    link = root / "current"
    if current is not None:
        os.symlink(os.path.join("releases", current), link)
    return str(releases), str(link)


def link_target(link) -> str:
    """The release a ``current`` link points at (its last path component)."""
    return os.path.basename(os.readlink(link))


def printf_runner(text, calls=None):
    """A runner that answers every command with a real ``printf '%s' text`` process (for ``lvs`` parsing).

    ``calls`` (a list) receives each argv the provider asked for, so its shape can be checked too.
    """

    def run(argv, env):
        if calls is not None:
            calls.append((list(argv), env))
        return run_process(["printf", "%s", text], env)

    return run
