"""Every test of a module here runs with ``exit_json``/``fail_json`` raising instead of exiting (``utils.py``).

This directory is a package (its ``__init__.py``), so pytest imports this file as ``modules.conftest``
and not as the top-level ``conftest``, the name ``tests/conftest.py`` is imported under by the tests.
"""

from __future__ import annotations

import pytest

from ansible_collections.mttr.recovery.tests.unit.plugins.modules.utils import patch_exit_fail


@pytest.fixture(autouse=True)
def module_harness():
    with patch_exit_fail():
        yield
