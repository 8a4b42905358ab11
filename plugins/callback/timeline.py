# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: notification
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: Record every task's start and result on the incident's timeline
description:
  - When an incident id is known, appends one entry per task result (host, task, ok / changed /
    failed / skipped / unreachable, duration) and one per playbook start and end to the incident
    store (see M(mttr.recovery.incident)).
  - A result that carries C(risk) (a failover that may have lost writes, WAL a rejoin discarded) also
    gets a C(risk) entry, which the post-incident review lists under what went wrong.
  - Never records module arguments. A task with C(no_log) is recorded without its message, and
    anything in a message that looks like a credential (C(password=...), C(token=...)) is masked.
  - Failures to write the store are warned about once and never fail the play.
requirements:
  - Enable it (C(callbacks_enabled = mttr.recovery.timeline) or C(ANSIBLE_CALLBACKS_ENABLED)).
options:
  incident_id:
    description:
      - The incident to record on. The extra var C(mttr_incident_id) overrides it.
      - Without an id, the callback records nothing until a M(mttr.recovery.recovery_plan) or
        M(mttr.recovery.incident) task returns the incident it opened; it records on that one from then on.
    type: str
    env:
      - name: MTTR_INCIDENT_ID
    ini:
      - section: mttr_timeline
        key: incident_id
  store:
    description: Path of the incident store. Defaults to C(incidents.sqlite) in the lab home (C(MTTR_HOME)).
    type: path
    env:
      - name: MTTR_INCIDENT_STORE
    ini:
      - section: mttr_timeline
        key: store
"""

import os
import time

from ansible.plugins.callback import CallbackBase

from ansible_collections.mttr.recovery.plugins.module_utils.redact import mask

MAX_MESSAGE = 500
# Modules whose result names the incident a run works on.
ADOPT_FROM = ("mttr.recovery.recovery_plan", "mttr.recovery.incident", "recovery_plan", "incident")


def scrub(text):
    """Mask anything shaped like ``password=...`` and cap the length."""
    return mask(text, MAX_MESSAGE)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "mttr.recovery.timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.incident_id = None
        self.store_path = None
        self.store = None
        self.broken = False
        self.started = {}
        self.playbook = None

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.incident_id = self.get_option("incident_id")
        self.store_path = self.get_option("store")

    # ------------------------------------------------------------------ store
    def _store(self):
        if self.store is None and not self.broken:
            try:
                from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import (
                    IncidentStore,
                    default_store_path,
                )

                self.store = IncidentStore(self.store_path or default_store_path())
            except Exception as exc:  # never fail the play because of the record
                self.broken = True
                self._display.warning(f"mttr.recovery.timeline: cannot open the incident store: {exc}")
        return self.store

    def _append(self, kind, message="", **fields):
        if not self.incident_id or self.broken:
            return
        store = self._store()
        if store is None:
            return
        try:
            store.append(self.incident_id, kind, scrub(message), **fields)
        except Exception as exc:
            self.broken = True
            self._display.warning(f"mttr.recovery.timeline: cannot record on incident {self.incident_id}: {exc}")

    # ------------------------------------------------------------------ events
    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(playbook._file_name)

    def v2_playbook_on_play_start(self, play):
        extra = play.get_variable_manager().extra_vars
        if extra.get("mttr_incident_id"):
            self.incident_id = str(extra["mttr_incident_id"])
        self._append("playbook", f"play '{play.get_name()}' of {self.playbook} started", action=self.playbook)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task._uuid] = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self.started[task._uuid] = time.monotonic()

    def _result(self, result, status):
        task = result._task
        started = self.started.get(task._uuid)
        duration = round(time.monotonic() - started, 3) if started is not None else None
        data = result._result or {}
        if not self.incident_id and task.action in ADOPT_FROM and isinstance(data.get("incident"), dict):
            # a run that opened its incident itself (extra vars without mttr_incident_id) records on it from now on
            self.incident_id = data["incident"].get("id")
        if status == "ok" and data.get("changed"):
            status = "changed"
        hidden = task.no_log or data.get("_ansible_no_log")
        if hidden:
            message = "output hidden by no_log"
        elif status in ("failed", "unreachable"):
            message = data.get("msg") or data.get("stderr") or status
        else:
            message = data.get("msg") if isinstance(data.get("msg"), str) else ""
        self._append(
            "task", message, host=result._host.get_name(), action=task.get_name(), result=status, duration=duration
        )
        # a module that may have lost data says so in 'risk'; it gets an entry of its own for the review
        if not hidden and isinstance(data.get("risk"), str) and data["risk"]:
            self._append("risk", data["risk"], host=result._host.get_name(), action=task.get_name(), result=status)

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        failed = [h for h in hosts if stats.summarize(h)["failures"] or stats.summarize(h)["unreachable"]]
        outcome = f"failed on {', '.join(failed)}" if failed else "succeeded"
        self._append(
            "playbook", f"{self.playbook} {outcome}", action=self.playbook, result="failed" if failed else "ok"
        )
