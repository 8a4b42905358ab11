"""Every role has a README (Galaxy refuses a collection without them) that agrees with the role's
argument specs and defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

ROLES = sorted(path.parent.parent.name for path in (REPO / "roles").glob("*/meta/argument_specs.yml"))
ROW = re.compile(r"^\| `(?P<name>[a-z0-9_]+)` \| (?P<default>.+?) \| .* \|$")


def load(path: Path):
    return yaml.safe_load(path.read_text()) if path.exists() else None


def options(role: str) -> dict[str, dict]:
    specs = load(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    return {name: spec for entry in specs.values() for name, spec in (entry.get("options") or {}).items()}


def facts(role: str) -> set[str]:
    """Variables the role's tasks set for the play (its results)."""
    names = set()
    for tasks_file in (REPO / "roles" / role / "tasks").glob("*.yml"):
        for task in load(tasks_file) or []:
            names.update((task.get("ansible.builtin.set_fact") or {}).keys())
    return names


def readme(role: str) -> str:
    path = REPO / "roles" / role / "README.md"
    assert path.is_file(), f"roles/{role} has no README.md: Galaxy's importer refuses the collection"
    return path.read_text()


TEMPLATE = re.compile(r"^\{\{ (?P<var>\w+)(?: \| default\((?P<fallback>.*)\))? \}\}$")
# How a README writes a default taken from another variable: `name`, else `value` (no '|' in a table
# cell: Markdown renderers disagree on escaping it).
FROM_VARIABLE = re.compile(r"^`(?P<var>\w+)`(?:, else `(?P<fallback>.*)`| \(.*\))?$")


def literal(text: str):
    return "" if text in ('""', "''") else yaml.safe_load(text)


def same_default(cell: str, default) -> bool:
    """Whether a README's default cell says what defaults/main.yml holds."""
    template = TEMPLATE.match(default) if isinstance(default, str) else None
    if template:
        written = FROM_VARIABLE.match(cell)
        if not written or written["var"] != template["var"]:
            return False
        if template["fallback"] is None:
            return written["fallback"] is None
        return written["fallback"] is not None and literal(written["fallback"]) == literal(template["fallback"])
    return cell.startswith("`") and cell.endswith("`") and literal(cell[1:-1]) == default


def test_there_are_roles():
    assert len(ROLES) >= 6, ROLES


@pytest.mark.parametrize("role", ROLES)
def test_readme_names_every_option_and_no_other(role):
    text = readme(role)
    specified = options(role)
    missing = [name for name in specified if f"`{name}`" not in text]
    assert not missing, f"roles/{role}/README.md does not document {missing}"
    prefixed = set(re.findall(rf"`({role}_[a-z0-9_]+)`", text))
    unknown = prefixed - set(specified) - facts(role)
    assert not unknown, f"roles/{role}/README.md names variables the role does not have: {sorted(unknown)}"


@pytest.mark.parametrize("role", ROLES)
def test_readme_defaults_match_the_role_defaults(role):
    defaults = load(REPO / "roles" / role / "defaults" / "main.yml") or {}
    specified = options(role)
    rows = {match["name"]: match["default"] for match in map(ROW.match, readme(role).splitlines()) if match}
    for name, spec in specified.items():
        assert name in rows, f"roles/{role}/README.md has no table row for {name}"
        if spec.get("required"):
            assert rows[name] == "(required)", f"{name} is required: its default cell says {rows[name]!r}"
            continue
        assert same_default(rows[name], defaults[name]), (
            f"{name}: README says {rows[name]}, defaults {defaults[name]!r}"
        )


@pytest.mark.parametrize("role", ROLES)
def test_readme_example_play_uses_the_role(role):
    text = readme(role)
    examples = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert examples, f"roles/{role}/README.md has no example play"
    play = yaml.safe_load(examples[0])
    assert isinstance(play, list) and play[0].get("hosts"), f"roles/{role}/README.md: the example is not a play"
    assert f"mttr.recovery.{role}" in examples[0]
    for heading in ("## Variables", "## Example", "## Requirements"):
        assert heading in text, f"roles/{role}/README.md lacks {heading!r}"
