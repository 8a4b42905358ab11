"""Harness for unit tests of the collection's modules (the amazon.aws ``tests/unit/plugins/modules/utils.py`` pattern).

``set_module_args()`` hands arguments to the ``AnsibleModule`` a module's ``main()`` creates, through
``ansible.module_utils.testing.patch_module_args`` (ansible-core 2.19+ no longer reads them from a patched
``basic._ANSIBLE_ARGS`` set by hand). ``exit_json``/``fail_json`` raise ``AnsibleExitJson``/``AnsibleFailJson``
carrying the result instead of printing it and exiting the process.

    with patch_exit_fail(), set_module_args({"probes": [...]}), pytest.raises(AnsibleExitJson) as info:
        health_check.main()
    assert info.value.result["changed"] is False
"""

from __future__ import annotations

import contextlib
from unittest.mock import patch

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
