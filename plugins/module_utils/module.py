# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of every mttr.recovery module: AnsibleModule plus what every adapter here needs once.

- ``run(argv, env)``: the command runner the engines take. ``env`` updates the environment (None or {}
  add nothing); a command that cannot be started is a result (rc 127, "cannot run ...") like any other
  failure, never an exit from the module in the middle of an engine that may already have changed
  something the failure must report.
- ``require(library, module)``: fail saying what to install when a Python library is missing.
- ``fail_from(exc, **result)``: an engine error as one readable ``fail_json``, with what the engine had
  already changed (the error's ``result`` and ``changed``) so ``changed`` tells the truth on failures too.
- ``finish(result)``: ``exit_json`` without the ``diff`` keys unless diff mode is on.
"""

from __future__ import annotations

import importlib
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

NOT_STARTED = 127


class MttrModule(AnsibleModule):
    def run(self, argv, env=None):
        try:
            return self.run_command(argv, environ_update=env or {}, handle_exceptions=False)
        except OSError as exc:
            return NOT_STARTED, "", f"cannot run {argv[0]}: {exc.strerror or exc}"

    def require(self, library, module=None):
        """Import ``module`` (default: ``library``) or fail saying to install ``library``; return it."""
        try:
            return importlib.import_module(module or library)
        except ImportError:
            self.fail_json(msg=missing_required_lib(library), exception=traceback.format_exc())

    def fail_from(self, exc, readable=(), **result):
        """Fail on an engine error. ``readable`` are the error classes whose message is the whole story;
        anything else also carries its traceback (in ``exception``, shown with -vvv)."""
        result = dict(getattr(exc, "result", None) or {}, **result)
        if getattr(exc, "changed", False):
            result["changed"] = True
        result.setdefault("changed", False)
        self.drop_diff(result)
        if isinstance(exc, readable):
            self.fail_json(msg=str(exc), **result)
        self.fail_json(msg=f"{type(exc).__name__}: {exc}", exception=traceback.format_exc(), **result)

    def drop_diff(self, result):
        """Without diff mode, no ``diff`` key in the result nor in the dicts of its lists (per-item results)."""
        if not self._diff:
            result.pop("diff", None)
            for value in result.values():
                for item in value if isinstance(value, list) else ():
                    if isinstance(item, dict):
                        item.pop("diff", None)
        return result

    def finish(self, result):
        self.exit_json(**self.drop_diff(result))
