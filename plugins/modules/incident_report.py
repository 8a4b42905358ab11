#!/usr/bin/python
# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: incident_report
short_description: Write an incident's post-incident review draft, or the status page of every incident
version_added: 0.1.0
author: mttr.recovery developers (@mttr-recovery)
description:
  - Reads the incident store that M(mttr.recovery.incident) and the C(mttr.recovery.timeline) callback write,
    and never writes to it.
  - O(kind=postmortem) builds the post-incident review draft of incident O(id) - summary, impact, SLO and
    error-budget cost, milestones against per-severity targets, the timeline, the actions with their durations,
    what went well and what went wrong (derived from the timeline - failed tasks, retries, escalations, missed
    targets, undelivered status updates), open questions for the root cause and follow-up items - and writes
    it to O(dest) as Markdown, HTML or JSON.
  - The HTML embeds a timeline chart (a Gantt of the phases open -> acknowledged -> mitigated -> resolved and of
    the actions) as a PNG data URI. Markdown gets the chart as C(<dest without .md>.timeline.png) beside it.
    The chart needs matplotlib on the controller; without it the report says so and everything else is written.
  - O(kind=status_page) writes a static HTML status page with every incident, unresolved ones first (most severe,
    then newest), each with its status, severity, services and latest update.
  - The output depends only on the store, never on the clock (an unresolved incident is reported as of its latest
    timeline entry), so a second run with nothing new on the timeline changes nothing.
options:
  kind:
    description: What to write.
    type: str
    choices: [postmortem, status_page]
    default: postmortem
  id:
    description: The incident to report on. Required when O(kind=postmortem).
    type: str
  format:
    description:
      - The post-incident review's format. C(json) is the review's data, without a chart.
      - The status page is always HTML.
    type: str
    choices: [md, html, json]
    default: html
  dest:
    description:
      - The file to write; its directory is created when missing.
      - Omitted with O(kind=postmortem), nothing is written and the review is returned in RV(content).
      - Omitted with O(kind=status_page), the page goes to C(status/index.html) in the mttr home
        (C($MTTR_HOME), else C(/var/lib/mttr) for root, else C(~/.local/state/mttr)).
    type: path
  store:
    description:
      - The incident store. Defaults to C(incidents.sqlite) in the mttr home.
    type: path
  slo:
    description: The availability objective the downtime is counted against, between 0 and 1.
    type: float
    default: 0.999
  slo_window_days:
    description: The SLO window in days.
    type: int
    default: 30
  targets:
    description:
      - Seconds from opening to C(acknowledge), C(mitigate) and C(resolve) that count as on target, per severity,
        for example C(acknowledge=120) under C(SEV1). Merged over the defaults - for C(SEV1) 300, 3600 and 14400, for
        C(SEV2) 900, 14400 and 86400, for C(SEV3) 3600, 86400 and 259200, for C(SEV4) 14400, 259200 and 604800.
    type: dict
    default: {}
  impact:
    description:
      - Impact facts for the review, over any recorded on the timeline as C(impact) entries - C(probes_down),
        C(probes_total), C(users_affected), C(data_loss), or a M(mttr.recovery.health_check) result.
    type: dict
    default: {}
  chart:
    description: Draw the timeline chart (HTML and Markdown).
    type: bool
    default: true
  title:
    description: The status page's title.
    type: str
    default: Service status
  limit:
    description: The most resolved incidents the status page lists (newest first); unresolved ones are all listed.
    type: int
    default: 50
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Renders everything and reports whether the files would change; writes nothing.
  diff_mode:
    support: full
    description: Before and after of the file's text (the chart's data shortened in HTML).
notes:
  - Runs where the store is; keep it on the controller with C(delegate_to=localhost) and C(run_once=true).
  - The report is a draft for people to complete; it states no root cause.
  - With the C(mttr.recovery.timeline) callback enabled, the run that writes the report adds entries to the
    timeline itself, so the next run's report differs.
requirements:
  - jinja2 (a dependency of ansible-core)
  - matplotlib >= 3.8 for the timeline chart (optional)
seealso:
  - module: mttr.recovery.incident
"""

EXAMPLES = r"""
- name: Write the review draft as HTML, with its timeline chart
  mttr.recovery.incident_report:
    id: INC-20261123-001
    dest: /srv/reviews/INC-20261123-001.html
  delegate_to: localhost
  run_once: true

- name: Write it as Markdown against a 99.95 % SLO over 28 days (the chart goes beside it)
  mttr.recovery.incident_report:
    id: INC-20261123-001
    format: md
    dest: /srv/reviews/INC-20261123-001.md
    slo: 0.9995
    slo_window_days: 28
    impact:
      users_affected: 1200
    mode: "0640"
  delegate_to: localhost
  run_once: true

- name: Read the review's data without writing anything
  mttr.recovery.incident_report:
    id: INC-20261123-001
    format: json
  delegate_to: localhost
  run_once: true
  register: review

- name: Show what failed
  ansible.builtin.debug:
    var: review.report.went_wrong

- name: Regenerate the status page
  mttr.recovery.incident_report:
    kind: status_page
    dest: /var/www/status/index.html
    title: Orders platform status
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
path:
  description: The file written (or that would be); null when O(dest) was omitted for a review.
  returned: always
  type: str
  sample: /srv/reviews/INC-20261123-001.html
paths:
  description: Every file written or checked, such as the Markdown review and its chart.
  returned: always
  type: list
  elements: str
  sample: [/srv/reviews/INC-20261123-001.md, /srv/reviews/INC-20261123-001.timeline.png]
changed_paths:
  description: The files whose content changed (would change, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/srv/reviews/INC-20261123-001.md]
content:
  description: The rendered review, when O(dest) was omitted.
  returned: when O(kind=postmortem) and O(dest) is omitted
  type: str
chart:
  description: Whether the timeline chart is in the review (or beside it).
  returned: when O(kind=postmortem)
  type: bool
  sample: true
incident:
  description: The incident, as M(mttr.recovery.incident) returns it.
  returned: when O(kind=postmortem)
  type: dict
  sample: {"id": "INC-20261123-001", "severity": "SEV2", "status": "resolved", "services": ["orders-db"]}
report:
  description:
    - The review's data. The keys below are those the roles use; see the module's engine for the rest.
  returned: when O(kind=postmortem)
  type: dict
  contains:
    summary:
      description: A paragraph summing the incident up.
      type: str
    phase:
      description: The EARS status update the incident's status calls for - explain, acknowledge, resolve, study.
      type: str
      sample: acknowledge
    as_of:
      description: The time the review describes (resolution, else the latest timeline entry).
      type: str
    milestones:
      description: Acknowledge, mitigate, resolve, each with C(seconds), C(target_s) and C(verdict) (met, missed).
      type: list
      elements: dict
    impact:
      description: Services, severity, C(downtime_s), C(ongoing), and the recorded probes and users affected.
      type: dict
    error_budget:
      description: The downtime against the SLO - C(budget_s), C(consumed_s), C(remaining_s), C(consumed_percent).
      type: dict
    actions:
      description: The recorded task results, each with C(host), C(action), C(result), C(duration_s).
      type: list
      elements: dict
    went_well:
      description: What went well.
      type: list
      elements: str
    went_wrong:
      description: What went wrong.
      type: list
      elements: str
    questions:
      description: Open questions for the root cause.
      type: list
      elements: str
    follow_ups:
      description: Follow-up items.
      type: list
      elements: str
    communications:
      description: The status updates recorded by the C(mttr.recovery.communicate) role (phase, webhook, outcome).
      type: list
      elements: dict
    latest_update:
      description: The latest status change, note or update on the timeline (time, kind, message).
      type: dict
status_page:
  description: How many incidents the status page lists.
  returned: when O(kind=status_page)
  type: dict
  sample: {"active": 1, "resolved": 4}
store:
  description: The incident store read.
  returned: always
  type: str
  sample: /var/lib/mttr/incidents.sqlite
"""

import os
import re

from ansible_collections.mttr.recovery.plugins.module_utils.incident_report import (
    HAS_JINJA2,
    render_files,
    render_status_page,
    write_files,
)
from ansible_collections.mttr.recovery.plugins.module_utils.incident_review import (
    DEFAULT_SLO,
    DEFAULT_WINDOW_DAYS,
    FORMATS,
    build_report,
    build_status_page,
    load,
    load_all,
)
from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentError, default_store_path
from ansible_collections.mttr.recovery.plugins.module_utils.lab_state import default_home
from ansible_collections.mttr.recovery.plugins.module_utils.module import MttrModule

DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def postmortem(params, store):
    record, timeline = load(store, params["id"])
    try:
        report = build_report(
            record,
            timeline,
            slo=params["slo"],
            window_days=params["slo_window_days"],
            targets=params["targets"],
            impact=params["impact"],
        )
    except ValueError as exc:
        raise IncidentError(str(exc)) from None
    files = render_files(report, params["format"], dest=params["dest"], chart=params["chart"])
    main_file = files[params["dest"]]
    result = {
        "incident": record,
        "report": report,
        "chart": params["format"] != "json" and (len(files) > 1 or b"data:image/png;base64," in main_file),
    }
    if params["dest"] is None:
        result["content"] = main_file.decode()
        files = {}
    return files, result


def status_page(params, store):
    page = build_status_page(load_all(store), limit=params["limit"])
    dest = params["dest"] or os.path.join(default_home(), "status", "index.html")
    files = {dest: render_status_page(page, title=params["title"]).encode()}
    return files, {"status_page": {"active": len(page["active"]), "resolved": len(page["resolved"])}}


def text_diff(path, content):
    """Before/after of a text file, the chart's base64 shortened so the diff stays readable."""
    try:
        with open(path, "rb") as handle:
            before = handle.read().decode(errors="replace")
    except FileNotFoundError:
        before = ""
    after = content.decode(errors="replace")
    return {
        "before": DATA_URI.sub("data:image/png;base64,…", before),
        "after": DATA_URI.sub("data:image/png;base64,…", after),
        "before_header": path,
        "after_header": path,
    }


def main():
    module = MttrModule(
        argument_spec={
            "kind": {"type": "str", "choices": ["postmortem", "status_page"], "default": "postmortem"},
            "id": {"type": "str"},
            "format": {"type": "str", "choices": list(FORMATS), "default": "html"},
            "dest": {"type": "path"},
            "store": {"type": "path"},
            "slo": {"type": "float", "default": DEFAULT_SLO},
            "slo_window_days": {"type": "int", "default": DEFAULT_WINDOW_DAYS},
            "targets": {"type": "dict", "default": {}},
            "impact": {"type": "dict", "default": {}},
            "chart": {"type": "bool", "default": True},
            "title": {"type": "str", "default": "Service status"},
            "limit": {"type": "int", "default": 50},
        },
        required_if=[("kind", "postmortem", ["id"])],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if not HAS_JINJA2:
        module.require("jinja2")
    params = module.params
    store = params["store"] or default_store_path()
    try:
        files, result = (postmortem if params["kind"] == "postmortem" else status_page)(params, store)
        diff = [text_diff(path, content) for path, content in files.items() if not path.endswith(".png")]
        changed_paths = write_files(files, check_mode=module.check_mode)
    except IncidentError as exc:
        module.fail_json(msg=str(exc), store=store)

    changed = bool(changed_paths)
    for path in files:
        if not os.path.exists(path):
            continue  # check mode: it would be created with these attributes
        file_args = module.load_file_common_arguments(params, path=path)
        changed = module.set_fs_attributes_if_different(file_args, changed)
    paths = list(files)
    path = paths[-1] if paths else None  # the review (or page) is last; its chart comes first
    result.update(
        changed=changed,
        path=path,
        paths=paths,
        changed_paths=changed_paths,
        store=store,
        msg=f"{'wrote' if changed_paths else 'unchanged'}: {path}" if path else "rendered, nothing written",
    )
    if diff:
        result["diff"] = diff[0]
    module.finish(result)


if __name__ == "__main__":
    main()
