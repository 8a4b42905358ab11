# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lab
author: mttr.recovery developers (@mttr-recovery)
version_added: 0.1.0
short_description: Read the embedded lab's connection facts
description:
  - Returns the state that C(mttr lab up) records in C(lab.json) under the lab's home
    (ports, paths, credentials, endpoints), so that the lab inventory can describe the lab
    without hard-coding ports.
  - Without terms, returns the whole state as one dictionary. Each term is a dotted key
    (for example C(ports.pg1)) whose value is returned.
options:
  _terms:
    description: Dotted keys to look up in the lab state.
    required: false
    type: list
    elements: str
  home:
    description:
      - The lab's home directory.
      - Defaults to C(~/.local/state/mttr), or C(/var/lib/mttr) when running as root.
    type: path
    env:
      - name: MTTR_HOME
notes:
  - The lookup runs on the controller, where the lab runs.
"""

EXAMPLES = r"""
- name: Show the port of the lab's first PostgreSQL node
  ansible.builtin.debug:
    msg: "{{ lookup('mttr.recovery.lab', 'ports.pg1') }}"

- name: Keep the whole lab state in a variable
  ansible.builtin.set_fact:
    lab: "{{ lookup('mttr.recovery.lab') }}"
"""

RETURN = r"""
_raw:
  description: The lab state, or the values of the requested keys.
  type: list
  elements: raw
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.mttr.recovery.plugins.module_utils.lab_state import (
    LabStateError,
    default_home,
    load_state,
)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        home = self.get_option("home") or default_home()
        try:
            state = load_state(home)
        except LabStateError as exc:
            raise AnsibleLookupError(str(exc)) from None
        if not terms:
            return [state]
        values = []
        for term in terms:
            value = state
            for part in term.split("."):
                if not isinstance(value, dict) or part not in value:
                    raise AnsibleLookupError(f"the lab state under {home} has no key '{term}'")
                value = value[part]
            values.append(value)
        return values
