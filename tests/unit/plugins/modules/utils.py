"""Harness for unit tests of the collection's modules (the amazon.aws ``tests/unit/plugins/modules/utils.py`` pattern).

``set_module_args()`` hands arguments to the ``AnsibleModule`` a module's ``main()`` creates, through
``ansible.module_utils.testing.patch_module_args`` (ansible-core 2.19+ no longer reads them from a patched
``basic._ANSIBLE_ARGS`` set by hand). ``exit_json``/``fail_json`` raise ``AnsibleExitJson``/``AnsibleFailJson``
carrying the result instead of printing it and exiting the process: ``conftest.py`` beside this file patches
them in for every test of this directory. ``run_module()`` puts the two together:

    result = run_module(incident, {"store": store, "services": ["web"]}, check=True)
    failed = run_module(incident, {"store": store, "id": "INC-X"}, AnsibleFailJson)
"""

from __future__ import annotations

import contextlib
from unittest.mock import patch

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class AnsibleExitJson(Exception):
    """Raised by the patched ``exit_json``: the module finished; ``result`` is what it returned."""

    def __init__(self, result, module=None):
        super().__init__(result)
        self.result = result
        self.module = module


class AnsibleFailJson(Exception):
    """Raised by the patched ``fail_json``: the module failed; ``result`` holds ``msg`` and ``failed``."""

    def __init__(self, result, module=None):
        super().__init__(result)
        self.result = result
        self.module = module


def exit_json(module, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs, module)


def fail_json(module, msg, **kwargs):
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise AnsibleFailJson(kwargs, module)


@contextlib.contextmanager
def set_module_args(args=None):
    """Expose ``args`` (plus internal ``_ansible_*`` keys such as ``_ansible_check_mode``) to AnsibleModule."""
    args = dict(args or {})
    args.setdefault("_ansible_remote_tmp", "/tmp")
    args.setdefault("_ansible_keep_remote_files", False)
    with patch_module_args(args):
        yield


@contextlib.contextmanager
def patch_exit_fail():
    """Make ``AnsibleModule.exit_json``/``fail_json`` raise instead of printing and exiting."""
    with patch.multiple(basic.AnsibleModule, exit_json=exit_json, fail_json=fail_json):
        yield


def module_outcome(module, args, outcome=AnsibleExitJson, check=False, diff=False):
    """Run ``module.main()`` with ``args`` (in check and diff mode if asked); return the exception it ended with.

    ``outcome`` is the one expected, AnsibleExitJson or AnsibleFailJson: its ``result`` is what the module
    returned, its ``module`` the AnsibleModule. Needs ``exit_json``/``fail_json`` patched (``patch_exit_fail``).
    """
    args = {"_ansible_check_mode": check, "_ansible_diff": diff, **args}
    with set_module_args(args), pytest.raises(outcome) as info:
        module.main()
    return info.value


def run_module(module, args, outcome=AnsibleExitJson, check=False, diff=False) -> dict:
    """What ``module.main()`` returned or failed with (see ``module_outcome``)."""
    return module_outcome(module, args, outcome, check=check, diff=diff).result
