"""The commands the README gives work as written."""

from __future__ import annotations

import re

from conftest import REPO, run_mttr
from mttr.lab.config import PORT_OFFSETS

README = (REPO / "README.md").read_text()


def test_virtualenv_on_path_is_absolute():
    """molecule changes directory before it runs ansible-playbook: a relative PATH entry finds nothing."""
    relative = re.findall(r"PATH=\"?(?!\$|/)[^:\s\"]*\.venv/bin", README)
    assert not relative, f"README puts a relative virtualenv on PATH: {relative}"


def test_report_extra_is_installed_from_the_checkout():
    """No package index has mttr: the extra comes from this checkout."""
    assert "pip install 'mttr[report]'" not in README
    assert ".venv/bin/pip install -e '.[report]'" in README
    help_text = run_mttr("report", "--help").stdout
    assert "mttr[report]" not in help_text and "pip install -e '.[report]'" in " ".join(help_text.split())


def test_port_bases_in_the_readme_stay_below_the_ephemeral_range():
    bases = [int(base) for base in re.findall(r"MTTR_LAB_PORT_BASE=(\d+)", README)]
    assert bases, "the README names no MTTR_LAB_PORT_BASE example"
    for base in bases:
        assert base + max(PORT_OFFSETS.values()) < 32768, base
