# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the embedded lab keeps its state, and how to read it.

Shared by the ``mttr`` CLI (which writes the state) and the ``mttr.recovery.lab`` lookup
(which the lab inventory uses), so both agree on the default home without configuration.
"""

from __future__ import annotations

import json
import os

STATE_FILE = "lab.json"


class LabStateError(Exception):
    """The lab's state is missing or unreadable; the message says what to do."""


def default_home(environ=None, euid=None):
    """Return the lab home: ``$MTTR_HOME``, else a per-user state directory.

    PostgreSQL refuses to run as root, so when root runs the lab the servers run as the
    ``postgres`` user, which cannot traverse ``/root``: root's default is therefore the
    system state directory ``/var/lib/mttr``, the place services keep state.
    """
    env = os.environ if environ is None else environ
    if env.get("MTTR_HOME"):
        return os.path.abspath(os.path.expanduser(env["MTTR_HOME"]))
    uid = os.geteuid() if euid is None else euid
    if uid == 0:
        return "/var/lib/mttr"
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "mttr")


def state_path(home):
    return os.path.join(home, STATE_FILE)


def load_state(home):
    """Return the lab state dict stored under ``home``; raise LabStateError when absent."""
    path = state_path(home)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise LabStateError(
            f"no lab state at {path}: start the lab with 'mttr lab up' (or set MTTR_HOME to the lab's home)"
        ) from None
    except (OSError, ValueError) as exc:
        raise LabStateError(f"cannot read the lab state {path}: {exc}") from None
