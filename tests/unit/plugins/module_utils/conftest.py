"""Fixtures of the backup engine tests: an S3 server and a repository of each type.

This directory is a package (its ``__init__.py``), so pytest imports this file as ``module_utils.conftest``
and not as the top-level ``conftest``, the name ``tests/conftest.py`` is imported under by the tests.
"""

from __future__ import annotations

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import LocalRepository
from ansible_collections.mttr.recovery.tests.support.moto import MotoServer


@pytest.fixture(scope="module")
def moto():
    """moto's server for S3 (a test module with other needs defines its own)."""
    server = MotoServer("s3")
    yield server
    server.stop()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def repo(request, tmp_path):
    """A backup repository: a local directory, and an S3 bucket on moto's server (so an integration test)."""
    if request.param == "local":
        return LocalRepository(tmp_path / "repo")
    return request.getfixturevalue("moto").repository()
