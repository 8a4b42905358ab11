"""The awx.awx collection's module argument specs, to check AWX configuration-as-code against.

Galaxy is out of reach, but the ``ansible`` package on PyPI ships awx.awx: its wheel is downloaded once with
the ordinary pip client (pinned, so the specs do not move under the tests) and only ``awx/awx`` is kept, in
``${XDG_CACHE_HOME:-~/.cache}/mttr/awx.awx-from-ansible-<version>`` (about 1.3 MB). The specs are read by
running each module's ``main()`` in a separate Python with ``AnsibleModule`` stopped at its constructor, so
they are the spec the module really builds (the shared auth options and every alias included), and the
DOCUMENTATION is read for the sub-options a spec leaves to the docs (workflow_nodes).

Run as a script: ``python awx_collection.py <collections root> <module> ...`` prints the specs as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ANSIBLE_VERSION = "12.3.0"
PREFIX = "ansible_collections/awx/awx/"


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mttr" / f"awx.awx-from-ansible-{ANSIBLE_VERSION}"


def collections_root() -> Path:
    """A directory holding ansible_collections/awx/awx, fetched from PyPI the first time."""
    root = cache_root()
    if (root / PREFIX / "MANIFEST.json").exists():
        return root
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
             "--dest", download, f"ansible=={ANSIBLE_VERSION}"],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(download).glob("ansible-*.whl")
        staging = Path(tempfile.mkdtemp(prefix=".awx-", dir=root.parent if root.parent.exists() else None))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging, [name for name in archive.namelist() if name.startswith(PREFIX)])
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(root)
    except OSError:  # another process got there first
        shutil.rmtree(staging, ignore_errors=True)
    return root


def argument_specs(modules: list[str]) -> dict[str, dict]:
    """{module: {"options": {name: {type, aliases, choices, elements}}, "docs": DOCUMENTATION options}}."""
    result = subprocess.run(
        [sys.executable, __file__, str(collections_root()), *modules], check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout)


def _extract(root: str, modules: list[str]) -> dict[str, dict]:
    import importlib

    import yaml
    from ansible.module_utils import basic

    class Captured(Exception):
        pass

    def capture(self, argument_spec=None, **_kwargs):
        raise Captured(argument_spec)

    sys.path.insert(0, root)
    basic.AnsibleModule.__init__ = capture
    keep = ("type", "aliases", "choices", "elements", "required")
    specs = {}
    for name in modules:
        module = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{name}")
        try:
            module.main()
        except Captured as exc:
            spec = exc.args[0]
        else:
            raise RuntimeError(f"awx.awx.{name} built no AnsibleModule")
        specs[name] = {
            "options": {option: {k: v for k, v in value.items() if k in keep} for option, value in spec.items()},
            "docs": yaml.safe_load(module.DOCUMENTATION).get("options", {}),
        }
    return specs


if __name__ == "__main__":
    json.dump(_extract(sys.argv[1], sys.argv[2:]), sys.stdout)
