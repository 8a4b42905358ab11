"""``mttr demo`` (the README's demo command) on a fresh home: the lab started and backed up, each scenario
asked for broken and recovered by ``mttr recover`` alone, the MTTR table and the reviews at the end."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import free_port_base, make_home, run_mttr

pytestmark = pytest.mark.integration


def test_demo_breaks_and_recovers_each_scenario_it_is_given():
    home = make_home()
    try:
        result = run_mttr(
            "demo", "app-crash", "bad-release", "--port-base", str(free_port_base()), home=home, timeout=600
        )
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        table = out[out.index("measured MTTR") :]
        assert re.search(r"app-crash\s+.\s+restart\s+.\s+INC-\S+\s+.\s+resolved", table), table
        assert re.search(r"bad-release\s+.\s+rollback\s+.\s+INC-\S+\s+.\s+resolved", table), table
        reviews = sorted(path.name for path in (home / "reviews").iterdir())
        assert len([name for name in reviews if name.endswith(".html")]) == 2, reviews
        status = run_mttr("lab", "status", home=home)
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        run_mttr("lab", "down", "--purge", home=home)
        shutil.rmtree(home, ignore_errors=True)
