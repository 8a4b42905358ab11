"""The ``mttr`` argument parser: where options may go."""

from __future__ import annotations

import pytest

from mttr.cli import build_parser
from mttr.lab import config

LAB_ACTIONS = [
    ["up"],
    ["up", "--port-base", "24500"],
    ["status", "--json"],
    ["break", "app-crash"],
    ["restart", "app"],
    ["down", "--purge"],
    ["env"],
]


@pytest.mark.parametrize("action", LAB_ACTIONS, ids=lambda action: action[0])
def test_lab_home_is_accepted_before_and_after_the_action(action):
    parser = build_parser()
    before = parser.parse_args(["lab", "--home", "/tmp/h1", *action])
    after = parser.parse_args(["lab", *action, "--home", "/tmp/h2"])
    assert before.home == "/tmp/h1"
    assert after.home == "/tmp/h2"
    assert before.action == after.action == action[0]


@pytest.mark.parametrize("action", LAB_ACTIONS, ids=lambda action: action[0])
def test_lab_home_defaults_to_none(action):
    assert build_parser().parse_args(["lab", *action]).home is None


def test_the_action_home_wins_over_the_lab_home():
    args = build_parser().parse_args(["lab", "--home", "/tmp/outer", "status", "--home", "/tmp/inner"])
    assert args.home == "/tmp/inner"


def test_port_base_help_names_the_real_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["lab", "up", "--help"])
    assert f"default {config.DEFAULT_PORT_BASE}" in " ".join(capsys.readouterr().out.split())
