"""The execution environment's build context, as CI can make it offline: the collection built with
ansible-galaxy, execution-environment.yml turned into a context by ``ansible-builder create`` (which
fetches nothing), and the collection's declared dependencies found by ``ansible-builder introspect``
the way the builder stage of the image finds them."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO

BIN = Path(sys.executable).parent
# Imported by plugins but not the collection's to declare: ansible-core brings them, or they are optional
# (incident_report draws its chart only when matplotlib is there; execution-environment.yml adds it).
NOT_DECLARED = {"ansible", "ansible_collections", "jinja2", "yaml", "matplotlib"}
# Import name -> the distribution requirements.txt names for it.
DISTRIBUTION = {"botocore": "boto3"}


def requirement_names(lines) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower())
    return names


def third_party_imports() -> set[str]:
    found = set()
    for path in (REPO / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in NOT_DECLARED}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The collection's tarball and the build context ansible-builder makes around it."""
    work = tmp_path_factory.mktemp("ee")
    (work / "dist").mkdir()
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--force", "--output-path", work / "dist", REPO],
        check=True,
        capture_output=True,
    )
    (tarball,) = (work / "dist").glob("mttr-recovery-*.tar.gz")
    tarball.rename(work / "dist" / "mttr-recovery.tar.gz")
    shutil.copy(REPO / "execution-environment.yml", work)
    subprocess.run(
        [BIN / "ansible-builder", "create", "--file", "execution-environment.yml", "--context", "context"],
        cwd=work,
        check=True,
        capture_output=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "NO_COLOR": "1"},
    )
    return work, work / "context"


def test_the_definition_is_schema_3_with_ansible_core_and_runner():
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    deps = definition["dependencies"]
    assert deps["ansible_core"]["package_pip"].startswith("ansible-core")
    assert deps["ansible_runner"]["package_pip"].startswith("ansible-runner")
    # the collection itself, from the tarball the definition copies into the context
    (collection,) = deps["galaxy"]["collections"]
    (copied,) = definition["additional_build_files"]
    assert collection == {"name": f"{copied['dest']}/mttr-recovery.tar.gz", "type": "file"}


def test_the_context_holds_the_built_collection_with_its_dependency_files(built):
    _work, context = built
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements == {"collections": [{"name": "collection/mttr-recovery.tar.gz", "type": "file"}]}
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    with tarfile.open(context / "_build" / "collection" / "mttr-recovery.tar.gz") as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
        assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("mttr", "recovery", galaxy["version"])
        meta = yaml.safe_load(tar.extractfile("meta/execution-environment.yml"))
        assert meta == {"version": 1, "dependencies": {"python": "requirements.txt", "system": "bindep.txt"}}
        for name in ("requirements.txt", "bindep.txt"):
            assert tar.extractfile(name).read() == (REPO / name).read_bytes(), name
        assert "plugins/modules/recovery_plan.py" in tar.getnames()


def test_the_containerfile_installs_the_collection_and_introspects_its_dependencies(built):
    _work, context = built
    containerfile = (context / "Containerfile").read_text()
    assert re.search(r'^ARG ANSIBLE_INSTALL_REFS=".*ansible-core.*ansible-runner.*"$', containerfile, re.M)
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    # the builder stage reads every installed collection's meta/execution-environment.yml
    assert re.search(r"introspect.py introspect .*--user-bindep=bindep.txt", containerfile)
    assert "RUN /output/scripts/install-from-bindep" in containerfile
    # the definition's own additions: the SSH client AWX reaches managed nodes with, and the chart library
    user_bindep = (context / "_build" / "bindep.txt").read_text().splitlines()
    assert "openssh-client [platform:dpkg]" in user_bindep and "openssh-clients [platform:rpm]" in user_bindep
    assert requirement_names((context / "_build" / "requirements.txt").read_text().splitlines()) == {"matplotlib"}


def test_introspect_finds_the_python_and_system_requirements_in_the_built_collection(built, tmp_path):
    work, _context = built
    root = tmp_path / "collections"
    target = root / "ansible_collections" / "mttr" / "recovery"
    target.mkdir(parents=True)
    with tarfile.open(work / "dist" / "mttr-recovery.tar.gz") as tar:
        tar.extractall(target, filter="data")
    result = subprocess.run(
        [
            BIN / "ansible-builder",
            "introspect",
            "--sanitize",
            root,
            "--write-pip",
            tmp_path / "pip.txt",
            "--write-bindep",
            tmp_path / "bindep.txt",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    pip = (tmp_path / "pip.txt").read_text().splitlines()
    bindep = (tmp_path / "bindep.txt").read_text().splitlines()
    assert any(line.startswith("psycopg[binary]>=3.1") and "mttr.recovery" in line for line in pip), result.stdout
    assert any(line.startswith("boto3>=") for line in pip), pip
    assert any(line.startswith("postgresql-client [platform:dpkg]") for line in bindep), bindep
    assert any(line.startswith("postgresql [platform:rpm]") for line in bindep), bindep


def test_every_library_the_plugins_import_is_declared():
    declared = requirement_names((REPO / "requirements.txt").read_text().splitlines())
    wanted = {DISTRIBUTION.get(name, name) for name in third_party_imports()}
    assert {"psycopg", "boto3"} <= wanted, wanted
    assert wanted <= {name.split("[")[0] for name in declared}, wanted - declared


def test_the_system_packages_are_bindep_lines_for_both_families():
    lines = [line.split("#", 1)[0].strip() for line in (REPO / "bindep.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert all(re.fullmatch(r"[a-z0-9.+-]+( \[[a-z0-9:! ._-]+\])?", line) for line in lines), lines
    assert {"postgresql-client [platform:dpkg]", "postgresql [platform:rpm]"} <= set(lines)
