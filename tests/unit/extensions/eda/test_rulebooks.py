"""The rulebooks against ansible-rulebook's own schema and parser (so a typo fails here, not in an activation),
and what each promises: a throttled recovery per service with the alert's service, failure mode and start."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[4]
RULEBOOKS = REPO / "extensions" / "eda" / "rulebooks"

validators = pytest.importorskip("ansible_rulebook.validators", reason="ansible-rulebook is not installed")
rules_parser = pytest.importorskip("ansible_rulebook.rules_parser")

EXTRA_VARS = {
    "mttr_service": "{{ event.alert.service }}",
    "mttr_failure_mode": "{{ event.alert.failure_mode or '' }}",
    "mttr_detected_at": "{{ event.alert.starts_at }}",
}


def load(name):
    return yaml.safe_load((RULEBOOKS / name).read_text())


@pytest.mark.parametrize("name", ["recover_on_alert.yml", "recover_on_alert_awx.yml"])
def test_rulebook_is_valid_and_parses(name, monkeypatch):
    from ansible_rulebook.conf import settings

    # the parser finds the source through ansible-galaxy (the collection is installed in this virtualenv)
    monkeypatch.setattr(settings, "ansible_galaxy_path", str(VENV_BIN / "ansible-galaxy"))
    rulebook = load(name)
    validators.Validate.rulebook(rulebook)
    variables = {"mttr_eda_port": 5050, "mttr_eda_catalog": "inventories/lab", "mttr_eda_job_template": "mttr recover"}
    (ruleset,) = rules_parser.parse_rule_sets(rulebook, variables)
    assert [source.source_name for source in ruleset.sources] == ["mttr.recovery.alertmanager"]
    first = rulebook[0]["rules"][0]
    assert first["condition"] == 'event.alert.kind == "firing" and event.alert.catalogued == true'
    assert first["throttle"] == {"once_within": "60 seconds", "group_by_attributes": ["event.alert.service"]}
    # resolve candidates never reach a recovery action
    for rule in rulebook[0]["rules"]:
        if "resolve-candidate" in str(rule["condition"]):
            assert list(rule["action"]) == ["debug"]


def test_the_playbook_and_the_job_template_get_the_same_extra_vars():
    playbook = load("recover_on_alert.yml")[0]["rules"][0]["action"]["run_playbook"]
    assert playbook["name"] == "mttr.recovery.recover"
    assert playbook["extra_vars"] == EXTRA_VARS
    template = load("recover_on_alert_awx.yml")[0]["rules"][0]["action"]["run_job_template"]
    assert template["name"] == "{{ mttr_eda_job_template }}"
    assert template["job_args"]["extra_vars"] == EXTRA_VARS


def test_the_recover_playbook_exists_for_the_fqcn():
    assert (REPO / "playbooks" / "recover.yml").is_file()
