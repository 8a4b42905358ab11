"""Every molecule scenario (extensions/molecule/*) against its own lab: the roles' own tests."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO, VENV_BIN, free_port_base, make_home

pytestmark = pytest.mark.integration

SCENARIOS = sorted(path.parent.name for path in (REPO / "extensions" / "molecule").glob("*/molecule.yml"))


def test_every_role_has_a_scenario():
    roles = sorted(path.name for path in (REPO / "roles").iterdir() if path.is_dir())
    missing = [role for role in roles if role not in SCENARIOS]
    assert not missing, f"roles without a molecule scenario: {missing}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario):
    home = make_home()
    env = dict(
        os.environ,
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        MTTR_HOME=str(home),
        MTTR_LAB_PORT_BASE=str(free_port_base()),
        ANSIBLE_NOCOLOR="1",
        NO_COLOR="1",
    )
    try:
        result = subprocess.run(
            [str(VENV_BIN / "molecule"), "test", "-s", scenario],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
        assert "converge" in result.stderr + result.stdout
    finally:
        subprocess.run([str(VENV_BIN / "mttr"), "lab", "down", "--purge"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
