"""AWX / Automation Platform configuration-as-code (extensions/awx, infra.aap_configuration's variable
format) checked offline: every item's keys against the argument spec of the awx.awx module its role calls
(aliases included), literal values against the spec's choices and types, survey questions against AWX's
survey format and the playbooks' extra vars, and every name one object uses against the objects defined.
EDA has no module in awx.awx and ansible.eda is not obtainable here: activations are checked against the
fields infra.aap_configuration's eda_* roles document (docs/awx.md)."""

from __future__ import annotations

import re

import pytest
import yaml

from ansible_collections.mttr.recovery.tests.support.awx_collection import argument_specs
from conftest import REPO

AWX = REPO / "extensions" / "awx"
# infra.aap_configuration variable -> the awx.awx module its role calls with each item's keys, 1:1.
MODULES = {
    "controller_credential_types": "credential_type",
    "controller_credentials": "credential",
    "controller_settings": "settings",
    "controller_instance_groups": "instance_group",
    "controller_projects": "project",
    "controller_execution_environments": "execution_environment",
    "controller_inventories": "inventory",
    "controller_inventory_sources": "inventory_source",
    "controller_templates": "job_template",
    "controller_workflows": "workflow_job_template",
    "controller_schedules": "schedule",
}
# Fields infra.aap_configuration's eda_* roles take (their READMEs; the roles pass them to ansible.eda's modules).
EDA_FIELDS = {
    "eda_projects": {"name", "new_name", "description", "url", "scm_branch", "organization", "credential", "state"},
    "eda_decision_environments": {
        "name", "new_name", "description", "image_url", "credential", "organization", "state",
    },
    "eda_credentials": {"name", "new_name", "description", "credential_type", "inputs", "organization", "state"},
    "eda_rulebook_activations": {
        "name", "description", "project", "rulebook", "decision_environment", "restart_policy", "extra_vars",
        "awx_token", "enabled", "state", "organization", "eda_credentials", "k8s_service_name",
        "swap_single_source", "event_streams", "log_level",
    },
}  # fmt: skip
EDA_REQUIRED = {
    "eda_projects": {"name", "url"},
    "eda_decision_environments": {"name", "image_url"},
    "eda_credentials": {"name", "credential_type"},
    "eda_rulebook_activations": {"name", "rulebook", "decision_environment"},
}
EDA_CHOICES = {("eda_rulebook_activations", "restart_policy"): {"always", "never", "on-failure"}}
SURVEY_QUESTION = {
    "question_name", "question_description", "variable", "type", "required", "default", "choices", "min", "max",
    "new_question",
}  # fmt: skip
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
PYTHON_TYPES = {"bool": bool, "list": list, "dict": dict, "int": int, "float": (int, float), "str": str}


def load_config() -> dict[str, list]:
    config: dict[str, list] = {}
    for path in sorted(AWX.glob("*.yml")):
        for key, value in (yaml.safe_load(path.read_text()) or {}).items():
            assert key not in config, f"{key} defined twice (again in {path.name})"
            config[key] = value
    return config


CONFIG = load_config()


@pytest.fixture(scope="module")
def specs():
    return argument_specs(sorted(set(MODULES.values()) | {"workflow_job_template_node"}))


def templated(value) -> bool:
    return isinstance(value, str) and "{{" in value


def names(option: str, spec: dict) -> set[str]:
    return {option, *spec.get("aliases", [])}


def problems_against(item: dict, options: dict[str, dict], where: str) -> list[str]:
    known = {alias: option for option, spec in options.items() for alias in names(option, spec)}
    found = []
    for key, value in item.items():
        if key not in known:
            found.append(f"{where}: {key!r} is no option of the module")
            continue
        spec = options[known[key]]
        if templated(value) or value is None:
            continue
        wanted = PYTHON_TYPES.get(spec.get("type", "str"))
        if (
            wanted
            and not isinstance(value, wanted)
            and not (spec.get("type", "str") == "str" and isinstance(value, int))
        ):
            found.append(f"{where}: {key} is {type(value).__name__}, the module wants {spec.get('type', 'str')}")
        if spec.get("choices") and value not in spec["choices"]:
            found.append(f"{where}: {key}={value!r} is not one of {spec['choices']}")
    for option, spec in options.items():
        if spec.get("required") and not names(option, spec) & set(item):
            found.append(f"{where}: {option} is required")
    return found


def test_the_config_uses_only_variables_these_tests_know():
    assert set(CONFIG) <= set(MODULES) | set(EDA_FIELDS), set(CONFIG) - set(MODULES) - set(EDA_FIELDS)
    for wanted in ("controller_templates", "controller_workflows", "controller_schedules", "eda_rulebook_activations"):
        assert CONFIG.get(wanted), wanted


@pytest.mark.parametrize("variable", sorted(set(MODULES) & set(CONFIG)))
def test_every_item_matches_its_awx_module_argument_spec(variable, specs):
    options = specs[MODULES[variable]]["options"]
    found = []
    for item in CONFIG[variable]:
        found += problems_against(item, options, f"{variable}[{item.get('name')}]")
    assert not found, "\n".join(found)


def test_the_spec_check_catches_a_typo(specs):
    options = specs["job_template"]["options"]
    assert problems_against({"name": "x", "playbok": "a.yml"}, options, "t") == [
        "t: 'playbok' is no option of the module"
    ]
    assert problems_against({"name": "x", "job_type": "walk"}, options, "t")
    assert problems_against({"name": "x", "ask_inventory": "yes please"}, options, "t")  # an alias, typed bool
    assert not problems_against({"name": "x", "ask_inventory": True}, options, "t")


def test_workflow_nodes_match_the_documented_node_options(specs):
    node_docs = specs["workflow_job_template"]["docs"]["workflow_nodes"]["suboptions"]
    found = []
    for workflow in CONFIG["controller_workflows"]:
        identifiers = {node["identifier"] for node in workflow["workflow_nodes"]}
        for node in workflow["workflow_nodes"]:
            where = f"{workflow['name']}[{node['identifier']}]"
            found += [f"{where}: {key!r} is no node option" for key in node if key not in node_docs]
            template = node["unified_job_template"]
            found += [
                f"{where}: unified_job_template.{key} unknown"
                for key in template
                if key not in node_docs["unified_job_template"]["suboptions"]
            ]
            for kind, targets in node.get("related", {}).items():
                if kind not in node_docs["related"]["suboptions"]:
                    found.append(f"{where}: related.{kind} unknown")
                found += [
                    f"{where}: {kind} -> {t['identifier']} undefined"
                    for t in targets
                    if t["identifier"] not in identifiers
                ]
    assert not found, "\n".join(found)


def test_the_workflow_is_recover_then_approval_on_failure_then_restore():
    (workflow,) = CONFIG["controller_workflows"]
    nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
    recover, approval, restore = nodes["recover"], nodes["approve-restore"], nodes["restore"]
    assert recover["unified_job_template"] == {
        **recover["unified_job_template"],
        "name": "mttr recover",
        "type": "job_template",
    }
    assert recover["related"] == {"failure_nodes": [{"identifier": "approve-restore"}]}
    assert approval["unified_job_template"]["type"] == "workflow_approval"
    assert approval["related"] == {"success_nodes": [{"identifier": "restore"}]}
    assert restore["unified_job_template"]["name"] == "mttr restore" and "related" not in restore


def playbook_variables(playbook: str) -> str:
    """The text a playbook's extra vars can be read in: it, the playbooks it imports, the roles' files."""
    texts = [(REPO / playbook).read_text()]
    texts += [path.read_text() for path in (REPO / "playbooks").glob("recover_*.yml")]
    texts += [path.read_text() for path in (REPO / "roles").glob("*/*/*.yml")]
    return "\n".join(texts)


def surveys():
    templates = {template["name"]: template for template in CONFIG["controller_templates"]}
    for template in CONFIG["controller_templates"]:
        yield template["name"], template, [template["playbook"]]
    for workflow in CONFIG["controller_workflows"]:
        playbooks = [
            templates[node["unified_job_template"]["name"]]["playbook"]
            for node in workflow["workflow_nodes"]
            if node["unified_job_template"]["type"] == "job_template"
        ]
        yield workflow["name"], workflow, playbooks


@pytest.mark.parametrize(("name", "owner", "playbooks"), list(surveys()), ids=[entry[0] for entry in surveys()])
def test_surveys_ask_for_extra_vars_the_playbooks_read(name, owner, playbooks):
    assert owner.get("survey_enabled") is True, name
    spec = owner["survey_spec"]
    assert set(spec) == {"name", "description", "spec"}, name
    text = "\n".join(playbook_variables(playbook) for playbook in playbooks)
    for question in spec["spec"]:
        assert set(question) <= SURVEY_QUESTION, (name, set(question) - SURVEY_QUESTION)
        assert question["type"] in SURVEY_TYPES, (name, question)
        assert re.search(rf"\b{question['variable']}\b", text), f"{name}: no playbook reads {question['variable']}"
        if question["type"] in ("multiplechoice", "multiselect"):
            assert question["choices"] and all(isinstance(choice, str) for choice in question["choices"]), question
            assert "default" not in question or question["default"] in question["choices"], question
    assert len({question["variable"] for question in spec["spec"]}) == len(spec["spec"]), name


def test_the_recover_template_asks_for_the_recover_playbooks_extra_vars():
    recover = next(t for t in CONFIG["controller_templates"] if t["playbook"] == "playbooks/recover.yml")
    asked = {question["variable"] for question in recover["survey_spec"]["spec"]}
    assert {"mttr_service", "mttr_failure_mode", "mttr_strategy", "mttr_incident_id"} <= asked
    # EDA's extra vars (mttr_detected_at) and a resume's mttr_from_start come as extra vars at launch
    assert recover["ask_variables_on_launch"] is True
    failure_modes = set(
        next(q for q in recover["survey_spec"]["spec"] if q["variable"] == "mttr_failure_mode")["choices"]
    )
    catalog_modes = set()
    for catalog in REPO.glob("inventories/*/service_catalog.yml"):
        for service in yaml.safe_load(catalog.read_text())["services"].values():
            catalog_modes |= set(service.get("strategies", {}))
    assert catalog_modes <= failure_modes, catalog_modes - failure_modes


def test_templates_exist_for_every_lifecycle_playbook():
    playbooks = {template["playbook"] for template in CONFIG["controller_templates"]}
    for name in ("recover", "failover", "restore", "rollback", "drill", "backup", "health"):
        assert f"playbooks/{name}.yml" in playbooks, name
    for playbook in playbooks:
        assert (REPO / playbook).is_file(), playbook


def defined(variable: str) -> set[str]:
    return {item["name"] for item in CONFIG.get(variable, [])}


def default_of(value: str) -> str:
    """The value a variable's template falls back to: "{{ var | default('x') }}" -> "x"."""
    match = re.search(r"default\('([^']*)'\)", value)
    return match.group(1) if match else value


def test_every_name_refers_to_an_object_defined_here():
    found = []

    def check(where: str, variable: str, name: str, builtin: frozenset = frozenset()) -> None:
        if name not in defined(variable) | builtin:
            found.append(f"{where}: {name!r} is not in {variable}")

    for template in CONFIG["controller_templates"]:
        where = template["name"]
        check(where, "controller_projects", template["project"])
        check(where, "controller_inventories", template["inventory"])
        check(where, "controller_execution_environments", template["execution_environment"])
        for credential in template["credentials"]:
            check(where, "controller_credentials", credential)
        for group in template.get("instance_groups", []):
            check(where, "controller_instance_groups", group)
    for credential in CONFIG["controller_credentials"]:
        builtin = frozenset({"Machine", "Amazon Web Services"})
        check(credential["name"], "controller_credential_types", credential["credential_type"], builtin)
    for source in CONFIG["controller_inventory_sources"]:
        check(source["name"], "controller_projects", source["source_project"])
        check(source["name"], "controller_inventories", source["inventory"])
        assert (REPO / default_of(source["source_path"]) / "service_catalog.yml").is_file(), source
    for workflow in CONFIG["controller_workflows"]:
        for node in workflow["workflow_nodes"]:
            if node["unified_job_template"]["type"] == "job_template":
                check(workflow["name"], "controller_templates", node["unified_job_template"]["name"])
    for schedule in CONFIG["controller_schedules"]:
        templates = frozenset(defined("controller_workflows"))
        check(schedule["name"], "controller_templates", schedule["unified_job_template"], templates)
    project = next(iter(CONFIG["controller_projects"]))
    assert project["default_environment"] in defined("controller_execution_environments")
    assert not found, "\n".join(found)


def test_the_drill_is_scheduled():
    drill = next(t["name"] for t in CONFIG["controller_templates"] if t["playbook"] == "playbooks/drill.yml")
    (schedule,) = [s for s in CONFIG["controller_schedules"] if s["unified_job_template"] == drill]
    assert re.fullmatch(r"DTSTART:\d{8}T\d{6}Z RRULE:FREQ=(DAILY|WEEKLY|MONTHLY);.*", schedule["rrule"]), schedule
    assert schedule.get("enabled", True) is True


@pytest.mark.parametrize("variable", sorted(EDA_FIELDS))
def test_eda_objects_use_the_documented_fields(variable):
    for item in CONFIG.get(variable, []):
        assert set(item) <= EDA_FIELDS[variable], (item["name"], set(item) - EDA_FIELDS[variable])
        assert EDA_REQUIRED[variable] <= set(item), (item["name"], EDA_REQUIRED[variable] - set(item))
        # EDA names: lower case letters, digits and underscores
        assert re.fullmatch(r"[a-z0-9_]+", item["name"]), item["name"]
        for (where, key), choices in EDA_CHOICES.items():
            if where == variable and key in item:
                assert item[key] in choices, (item["name"], key, item[key])


def test_the_activation_runs_the_awx_rulebook_against_a_defined_job_template():
    (activation,) = CONFIG["eda_rulebook_activations"]
    rulebook = REPO / "extensions" / "eda" / "rulebooks" / activation["rulebook"]
    assert rulebook.is_file(), rulebook
    actions = [rule["action"] for play in yaml.safe_load(rulebook.read_text()) for rule in play["rules"]]
    assert any("run_job_template" in action for action in actions), actions
    # every variable the rulebook needs is given
    wanted = set(re.findall(r"\b(mttr_eda_[a-z_]+)\b(?!\s*\|\s*default)", rulebook.read_text()))
    assert wanted <= set(activation["extra_vars"]), wanted - set(activation["extra_vars"])
    assert activation["extra_vars"]["mttr_eda_job_template"] in defined("controller_templates")
    assert activation["project"] in defined("eda_projects")
    assert activation["decision_environment"] in defined("eda_decision_environments")
    assert set(activation["eda_credentials"]) <= defined("eda_credentials")


def test_the_config_files_are_what_docs_awx_md_names():
    text = (REPO / "docs" / "awx.md").read_text()
    for path in AWX.glob("*.yml"):
        assert f"extensions/awx/{path.name}" in text, path.name
    for module in MODULES.values():
        assert module in text, module


def test_yaml_files_are_lists_under_each_variable():
    for variable, items in CONFIG.items():
        assert isinstance(items, list) and all(isinstance(item, dict) for item in items), variable
        # every object is named, but settings, which are given as one dict
        assert all("name" in item for item in items) or variable == "controller_settings", variable
