# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to reach PostgreSQL from a module: psycopg loaded once, the login options, the connection.

Modules start from ``postgres_argument_spec()`` (documented by the ``mttr.recovery.postgres`` doc
fragment), fail with ``missing_required_lib('psycopg')`` when ``load_psycopg()`` is None, and engines
connect with ``connect(params)``. The replication facts a failover, a rejoin and a probe read are
``pg_replication``'s.
"""

from __future__ import annotations

_PSYCOPG = []


def load_psycopg():
    """Import psycopg once, outside any timing; None when the host lacks it."""
    if not _PSYCOPG:
        try:
            import psycopg
        except ImportError:
            psycopg = None
        _PSYCOPG.append(psycopg)
    return _PSYCOPG[0]


def postgres_argument_spec():
    return {
        "login_user": {"type": "str"},
        "login_password": {"type": "str", "no_log": True},
    }


def connection_params(host, port, user=None, password=None, dbname="postgres"):
    """psycopg keyword arguments, without the ones not given (psycopg then uses libpq's defaults)."""
    params = {"host": host, "port": int(port), "user": user, "password": password, "dbname": dbname}
    return {key: value for key, value in params.items() if value not in (None, "")}


def connect(params, timeout=3, autocommit=True):
    return load_psycopg().connect(autocommit=autocommit, connect_timeout=max(1, round(timeout)), **params)
