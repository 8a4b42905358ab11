# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the failover engines share: the error they raise and how a library error becomes one line."""

from __future__ import annotations


class FailoverError(Exception):
    """A failover cannot go on safely; the message says what is wrong and what to do.

    ``changed`` says whether something was already changed before it stopped (a rewound node whose
    start failed, a promotion that cannot prove a write).
    """

    def __init__(self, message, changed=False):
        super().__init__(message)
        self.changed = changed


def first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_targets(provider, action, nodes, old, new):
    """What the failover is to act on makes sense: ``nodes`` (postgres) or ``old`` and ``new``, distinct."""
    if nodes is not None:
        if provider != "postgres" or action != "failover":
            raise FailoverError("nodes is for provider=postgres, action=failover; name old and new otherwise")
        names = [node["name"] for node in nodes]
        if len(names) < 2 or len(set(names)) != len(names):
            raise FailoverError(f"nodes needs at least two nodes with distinct names (got {', '.join(names)})")
    elif not old or not new:
        raise FailoverError("name the nodes: nodes (postgres), or old and new")
    elif old["name"] == new["name"]:
        raise FailoverError("old and new name the same node")
