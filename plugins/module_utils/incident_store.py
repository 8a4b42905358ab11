# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident record: incidents, their append-only timelines and per-service recovery locks, in SQLite.

Plain Python, no Ansible: the ``incident`` module and the incident callback plugin share it, both on the
controller. One file (``<mttr home>/incidents.sqlite`` by default) is written by several processes at once
(playbook runs, their callback, the CLI), so:

- the database runs in WAL mode (readers never block the writer) with ``synchronous=NORMAL`` (a power cut may
  lose the last commits, never corrupt the file) and a busy timeout;
- every read-modify-write (id generation, transitions, updates, appends, locks) is one ``BEGIN IMMEDIATE``
  transaction: it takes the write lock before reading, so two writers never decide on the same stale read;
- the schema is versioned by ``PRAGMA user_version`` and migrated forward on open.

Times are ISO 8601 UTC text with microseconds (``2026-11-23T09:00:00.000000+00:00``); stored in one format,
they sort as text. Every ``now``/``time`` parameter takes a datetime, such text (a trailing ``Z`` is fine,
a time without zone is UTC) or None for the current time.

The state machine: ``open -> acknowledged -> mitigated -> resolved``. Skipping forward is allowed
(``open -> resolved``); the skipped timestamps are set to the same time, since a resolved incident was
acknowledged and mitigated by then at the latest, and the status entry says which were skipped.
``escalated`` is reachable from any unresolved status and leads to acknowledged, mitigated or resolved.
Going back (``mitigated -> acknowledged``, anything from ``resolved``, anything to ``open``) is refused.
Each ``*_at`` field is the first time the incident reached that status; it is never moved afterwards.
Resolving an incident releases its recovery locks.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import socket
import sqlite3
from time import monotonic, sleep

from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import parse_time
from ansible_collections.mttr.recovery.plugins.module_utils.lab_state import default_home
from ansible_collections.mttr.recovery.plugins.module_utils.processes import pid_alive

STATUSES = ("open", "acknowledged", "mitigated", "resolved", "escalated")
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
STORE_FILE = "incidents.sqlite"
BUSY_TIMEOUT_S = 30.0

# Where each status may go next.
TRANSITIONS = {
    "open": ("acknowledged", "mitigated", "resolved", "escalated"),
    "acknowledged": ("mitigated", "resolved", "escalated"),
    "mitigated": ("resolved", "escalated"),
    "escalated": ("acknowledged", "mitigated", "resolved"),
    "resolved": (),
}
# The timestamps a status sets when they are still empty (the first is the status's own).
REACHES = {
    "acknowledged": ("acknowledged_at",),
    "mitigated": ("mitigated_at", "acknowledged_at"),
    "resolved": ("resolved_at", "acknowledged_at", "mitigated_at"),
    "escalated": ("escalated_at",),
}
DURATIONS = (
    ("time_to_acknowledge_s", "acknowledged_at"),
    ("time_to_mitigate_s", "mitigated_at"),
    ("time_to_resolve_s", "resolved_at"),
)
RECORD_FIELDS = (
    "id",
    "services",
    "severity",
    "status",
    "summary",
    "opened_at",
    "acknowledged_at",
    "mitigated_at",
    "resolved_at",
    "escalated_at",
)
ENTRY_FIELDS = ("seq", "incident_id", "time", "kind", "message", "host", "action", "result", "duration")
GENERATED_ID = re.compile(r"INC-(\d{8})-(\d+)")

# One list of statements per schema version; user_version is the number of lists applied.
MIGRATIONS = (
    (
        """CREATE TABLE incidents (
            id TEXT PRIMARY KEY,
            services TEXT NOT NULL,
            severity TEXT NOT NULL,
            status TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '',
            opened_at TEXT NOT NULL,
            acknowledged_at TEXT,
            mitigated_at TEXT,
            resolved_at TEXT,
            escalated_at TEXT
        )""",
        """CREATE TABLE timeline (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            incident_id TEXT NOT NULL REFERENCES incidents (id),
            time TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            host TEXT,
            action TEXT,
            result TEXT,
            duration REAL
        )""",
        "CREATE INDEX timeline_by_incident ON timeline (incident_id, time, seq)",
        """CREATE TABLE locks (
            service TEXT PRIMARY KEY,
            incident_id TEXT NOT NULL REFERENCES incidents (id),
            since TEXT NOT NULL,
            pid INTEGER,
            host TEXT
        )""",
    ),
)


class IncidentError(Exception):
    """The incident store refused or failed an operation; the message says what is wrong and what to do."""


class UnknownIncident(IncidentError):
    """No incident has the id asked for."""


class LockHeld(IncidentError):
    """Another unresolved incident holds a service's recovery lock."""

    def __init__(self, service, incident_id, since, pid, stale, host=None):
        self.service = service
        self.incident_id = incident_id
        self.since = since
        self.pid = pid
        self.stale = stale
        self.host = host
        if stale:
            holder = f"pid {pid}, which is no longer running: the lock is stale"
        elif host and host != socket.gethostname():
            holder = f"pid {pid} on {host}, another machine, so whether it still runs is unknown"
        else:
            holder = f"pid {pid}, still running"
        super().__init__(
            f"the recovery lock on {service} is held by incident {incident_id} since {since} ({holder}); "
            f"wait for that incident to be resolved, or if incident {incident_id} is dead take the lock over "
            "(takeover=true)"
        )


def default_store_path(environ=None, euid=None):
    """``<mttr home>/incidents.sqlite``: the home is ``$MTTR_HOME``, else the lab's per-user default."""
    return os.path.join(default_home(environ, euid), STORE_FILE)


def timestamp(value=None):
    """Canonical time text (ISO 8601, UTC, microseconds) of ``value``: a datetime, ISO text, or None for now."""
    if value is None:
        moment = datetime.datetime.now(datetime.timezone.utc)
    elif isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise IncidentError(f"cannot read the time {value!r}: give ISO 8601 such as 2026-11-23T09:00:00Z") from None
    else:
        raise IncidentError(f"cannot use {value!r} as a time: give a datetime or ISO 8601 text")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def durations(record):
    """Seconds from ``opened_at`` to acknowledgement, mitigation and resolution; None for those not reached."""
    opened = record.get("opened_at")
    result = {}
    for key, field in DURATIONS:
        reached = record.get(field)
        if opened and reached:
            result[key] = round((parse_time(reached) - parse_time(opened)).total_seconds(), 6)
        else:
            result[key] = None
    return result


def lock_is_stale(pid, host):
    """A lock is stale when its holder ran on this machine and is gone; on another machine nobody can tell."""
    if host and host != socket.gethostname():
        return False
    return not pid_alive(pid)


def _clean_services(services):
    if isinstance(services, str):
        services = [services]
    if not services:
        raise IncidentError("an incident needs at least one service: name the services it affects")
    cleaned = set()
    for service in services:
        cleaned.add(_clean_service(service))
    return sorted(cleaned)


def _clean_service(service):
    if not isinstance(service, str) or not service.strip():
        raise IncidentError(f"a service is a non-empty name, got {service!r}")
    return service.strip()


def _clean_severity(severity):
    if severity not in SEVERITIES:
        raise IncidentError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    return severity


def _clean_status(status):
    if status not in STATUSES:
        raise IncidentError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    return status


def _clean_id(incident_id):
    if not isinstance(incident_id, str) or not incident_id.strip():
        raise IncidentError(f"an incident id is a non-empty string, got {incident_id!r}")
    return incident_id.strip()


def _text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


class IncidentStore:
    """The incident store at ``path`` (created on first use); ``":memory:"`` gives a private, throwaway one."""

    def __init__(self, path):
        self.path = path if path == ":memory:" else os.path.abspath(os.path.expanduser(path))
        self._conn = None
        try:
            if self.path != ":memory:":
                self._create_file()
            self._conn = self._connect()
            self._migrate()
        except sqlite3.Error as exc:
            self.close()
            raise IncidentError(f"cannot open the incident store {self.path}: {exc}") from None
        except OSError as exc:
            self.close()
            raise IncidentError(
                f"cannot create the incident store {self.path}: {exc}; set store (or MTTR_HOME) to a writable place"
            ) from None

    @classmethod
    def snapshot(cls, path):
        """A throwaway in-memory copy of the store at ``path`` (empty when there is none yet).

        Check mode runs the real operations on it: what would change is computed exactly, and nothing is written.
        """
        store = cls(":memory:")
        path = os.path.abspath(os.path.expanduser(path))
        if os.path.exists(path):
            try:
                source = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
                try:
                    source.backup(store._conn)
                finally:
                    source.close()
                store._migrate()
            except sqlite3.Error as exc:
                store.close()
                raise IncidentError(f"cannot read the incident store {path}: {exc}") from None
        return store

    # ------------------------------------------------------------------ plumbing

    def _create_file(self):
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
        if not os.path.exists(self.path):
            # Created 0600 before SQLite opens it; SQLite gives the -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))

    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if self.path != ":memory:":
            mode = self._wal(conn)
            if str(mode).lower() != "wal":
                conn.close()
                raise IncidentError(
                    f"the incident store {self.path} cannot use write-ahead logging (journal mode {mode}): "
                    "put it on a local filesystem"
                )
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @staticmethod
    def _wal(conn):
        # Switching a new file to WAL needs a moment alone with it; concurrent first opens may see it busy.
        deadline = monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or monotonic() > deadline:
                    raise
                sleep(0.02)

    def _migrate(self):
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == len(MIGRATIONS):
            return
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise IncidentError(
                    f"the incident store {self.path} has schema version {version}, newer than this "
                    f"mttr.recovery knows ({len(MIGRATIONS)}): upgrade the collection"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    @contextlib.contextmanager
    def _write(self):
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before anything is read."""
        with self._sqlite_errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _sqlite_errors(self):
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise IncidentError(
                    f"the incident store {self.path} stayed locked by another writer for more than "
                    f"{BUSY_TIMEOUT_S:g} s ({exc}); retry, and look for a stuck process holding it"
                ) from None
            raise IncidentError(f"incident store {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            raise IncidentError(f"incident store {self.path}: {exc}") from None

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ------------------------------------------------------------------ rows

    @staticmethod
    def _record(row):
        record = {field: row[field] for field in RECORD_FIELDS}
        record["services"] = json.loads(row["services"])
        record["durations"] = durations(record)
        return record

    @staticmethod
    def _entry(row):
        return {field: row[field] for field in ENTRY_FIELDS}

    @staticmethod
    def _lock(row):
        lock = {field: row[field] for field in ("service", "incident_id", "since", "pid", "host")}
        lock["stale"] = lock_is_stale(lock["pid"], lock["host"])
        return lock

    def _find(self, conn, incident_id):
        row = conn.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return None if row is None else self._record(row)

    def _require(self, conn, incident_id):
        record = self._find(conn, incident_id)
        if record is None:
            raise UnknownIncident(
                f"no incident {incident_id} in {self.path}: check the id, or open it first (with its services)"
            )
        return record

    @staticmethod
    def _add_entry(conn, incident_id, kind, message="", at=None, host=None, action=None, result=None, duration=None):
        values = {
            "incident_id": incident_id,
            "time": timestamp(at),
            "kind": kind,
            "message": "" if message is None else str(message),
            "host": host,
            "action": action,
            "result": _text(result),
            "duration": None if duration is None else float(duration),
        }
        cursor = conn.execute(
            "INSERT INTO timeline (incident_id, time, kind, message, host, action, result, duration) "
            "VALUES (:incident_id, :time, :kind, :message, :host, :action, :result, :duration)",
            values,
        )
        return dict(values, seq=cursor.lastrowid)

    @staticmethod
    def _next_id(conn, at):
        day = at[:10].replace("-", "")
        highest = 0
        for row in conn.execute("SELECT id FROM incidents WHERE id LIKE ?", (f"INC-{day}-%",)):
            match = GENERATED_ID.fullmatch(row["id"])
            if match and match.group(1) == day:
                highest = max(highest, int(match.group(2)))
        return f"INC-{day}-{highest + 1:03d}"

    # ------------------------------------------------------------------ incidents

    def open(
        self, services, severity="SEV3", summary="", incident_id=None, now=None, lock=False, pid=None, takeover=False
    ):
        """Open an incident; return ``(record, changed)``.

        Without ``incident_id`` the id is ``INC-<UTC day of now>-NNN``, the day's next number. With one that
        exists, the incident is only made to match the given services, severity and summary (unchanged when
        they already do); its status never moves.

        With ``lock``, a new incident takes the recovery lock on each service in the same transaction, so
        two incidents opened at once for one service cannot both exist: when another unresolved incident
        holds one of the locks, LockHeld is raised and nothing is written (unless ``takeover``).
        """
        services = _clean_services(services)
        severity = _clean_severity(severity)
        summary = "" if summary is None else str(summary)
        at = timestamp(now)
        if incident_id is not None:
            incident_id = _clean_id(incident_id)
        with self._write() as conn:
            if incident_id is not None:
                existing = self._find(conn, incident_id)
                if existing is not None:
                    return self._apply_update(conn, existing, severity, summary, services, at)
            else:
                incident_id = self._next_id(conn, at)
            if lock and not takeover:
                for service in services:
                    self._refuse_if_held(conn, service, incident_id)
            conn.execute(
                "INSERT INTO incidents (id, services, severity, status, summary, opened_at) VALUES (?, ?, ?, ?, ?, ?)",
                (incident_id, json.dumps(services), severity, "open", summary, at),
            )
            message = f"opened ({severity}, {', '.join(services)})" + (f": {summary}" if summary else "")
            self._add_entry(conn, incident_id, "status", message, at=at, action="open")
            if lock:
                for service in services:
                    self._take_lock(conn, service, incident_id, pid, takeover, at)
            return self._require(conn, incident_id), True

    def get(self, incident_id):
        with self._sqlite_errors():
            return self._require(self._conn, incident_id)

    def transition(self, incident_id, status, note=None, now=None):
        """Move an incident to ``status``; return ``(record, changed)``. The same status again changes nothing."""
        status = _clean_status(status)
        at = timestamp(now)
        with self._write() as conn:
            record = self._require(conn, incident_id)
            current = record["status"]
            if status == current:
                return record, False
            if status not in TRANSITIONS[current]:
                raise IncidentError(self._refusal(record, status))
            if at < record["opened_at"]:
                raise IncidentError(
                    f"cannot mark incident {incident_id} {status} at {at}: "
                    f"it was opened later, at {record['opened_at']}"
                )
            fields = {"status": status}
            skipped = []
            for field in REACHES[status]:
                if record[field] is None:
                    fields[field] = at
                    if field != REACHES[status][0]:
                        skipped.append(field[: -len("_at")])
            assignments = ", ".join(f"{field} = :{field}" for field in fields)
            conn.execute(f"UPDATE incidents SET {assignments} WHERE id = :id", dict(fields, id=incident_id))
            message = f"{current} -> {status}"
            if skipped:
                message += f" (skipped {' and '.join(skipped)}: set to the same time)"
            if note:
                message += f": {note}"
            self._add_entry(conn, incident_id, "status", message, at=at, action=status, result=current)
            if status == "resolved":
                for row in conn.execute("SELECT service FROM locks WHERE incident_id = ?", (incident_id,)).fetchall():
                    conn.execute("DELETE FROM locks WHERE service = ?", (row["service"],))
                    self._add_entry(
                        conn,
                        incident_id,
                        "lock",
                        f"released the recovery lock on {row['service']} (resolved)",
                        at=at,
                        action="unlock",
                    )
            return self._require(conn, incident_id), True

    @staticmethod
    def _refusal(record, status):
        incident_id, current = record["id"], record["status"]
        if current == "resolved":
            return (
                f"incident {incident_id} was resolved at {record['resolved_at']} and a resolved incident is final: "
                f"open a new incident (mentioning {incident_id}) if the problem is back"
            )
        return (
            f"incident {incident_id} is {current} and cannot go back to {status}: statuses only move forward "
            "(open -> acknowledged -> mitigated -> resolved; escalated from any unresolved status, then on to "
            f"acknowledged, mitigated or resolved); from {current} it can go to {', '.join(TRANSITIONS[current])}"
        )

    def update(self, incident_id, severity=None, summary=None, services=None):
        """Change an incident's severity, summary or services (None keeps one); return ``(record, changed)``."""
        severity = None if severity is None else _clean_severity(severity)
        summary = None if summary is None else str(summary)
        services = None if services is None else _clean_services(services)
        with self._write() as conn:
            record = self._require(conn, incident_id)
            return self._apply_update(conn, record, severity, summary, services, timestamp())

    def _apply_update(self, conn, record, severity, summary, services, at):
        wanted = {"severity": severity, "summary": summary, "services": services}
        changes = {field: value for field, value in wanted.items() if value is not None and value != record[field]}
        if not changes:
            return record, False
        values = dict(changes)
        if "services" in values:
            values["services"] = json.dumps(values["services"])
        assignments = ", ".join(f"{field} = :{field}" for field in values)
        conn.execute(f"UPDATE incidents SET {assignments} WHERE id = :id", dict(values, id=record["id"]))
        message = "; ".join(f"{field} {record[field]!r} -> {value!r}" for field, value in changes.items())
        self._add_entry(conn, record["id"], "update", message, at=at, action="update")
        return self._require(conn, record["id"]), True

    def list(self, status=None, service=None):
        """Incidents, oldest first; only those in ``status`` (one or a list) or affecting ``service`` if given."""
        statuses = None
        if status is not None:
            statuses = {_clean_status(one) for one in ([status] if isinstance(status, str) else status)}
        with self._sqlite_errors():
            rows = self._conn.execute("SELECT * FROM incidents ORDER BY opened_at, id").fetchall()
        records = [self._record(row) for row in rows]
        return [
            record
            for record in records
            if (statuses is None or record["status"] in statuses) and (service is None or service in record["services"])
        ]

    # ------------------------------------------------------------------ timeline

    def append(self, incident_id, kind, message="", host=None, action=None, result=None, duration=None, time=None):
        """Add an entry to an incident's timeline (never changed afterwards); return it with its ``seq``.

        ``result`` is text; anything else is stored as its JSON. ``duration`` is in seconds.
        """
        if not isinstance(kind, str) or not kind.strip():
            raise IncidentError(f"a timeline entry needs a kind (note, task, status...), got {kind!r}")
        at = timestamp(time)
        with self._write() as conn:
            self._require(conn, incident_id)
            return self._add_entry(
                conn,
                incident_id,
                kind.strip(),
                message,
                at=at,
                host=host,
                action=action,
                result=result,
                duration=duration,
            )

    def timeline(self, incident_id):
        """An incident's entries, ordered by time then seq."""
        with self._sqlite_errors():
            self._require(self._conn, incident_id)
            rows = self._conn.execute(
                "SELECT * FROM timeline WHERE incident_id = ? ORDER BY time, seq", (incident_id,)
            ).fetchall()
        return [self._entry(row) for row in rows]

    # ------------------------------------------------------------------ locks

    def acquire_lock(self, service, incident_id, pid=None, takeover=False):
        """Take the recovery lock on ``service`` for an unresolved incident; return the lock.

        The lock carries ``changed`` (False when the incident already held it; its pid is then refreshed
        quietly) and ``previous`` (the lock taken over or reclaimed, else None). A lock held by another
        unresolved incident raises LockHeld, unless ``takeover``, which takes it whether its holder is stale
        or live and says so on both timelines. A lock left by a resolved or deleted incident is reclaimed.
        """
        with self._write() as conn:
            record = self._require(conn, incident_id)
            if record["status"] == "resolved":
                raise IncidentError(
                    f"incident {incident_id} is resolved: it cannot take the recovery lock on {service}"
                )
            return self._take_lock(conn, service, incident_id, pid, takeover, timestamp())

    def _held(self, conn, service):
        """The lock on ``service`` with its holder's status, or None."""
        row = conn.execute(
            "SELECT locks.*, incidents.status AS holder_status FROM locks "
            "LEFT JOIN incidents ON incidents.id = locks.incident_id WHERE locks.service = ?",
            (_clean_service(service),),
        ).fetchone()
        return None if row is None else (self._lock(row), row["holder_status"])

    def _refuse_if_held(self, conn, service, incident_id):
        found = self._held(conn, service)
        if found is None:
            return
        held, holder_status = found
        if held["incident_id"] != incident_id and holder_status not in (None, "resolved"):
            raise LockHeld(service, held["incident_id"], held["since"], held["pid"], held["stale"], held["host"])

    def _take_lock(self, conn, service, incident_id, pid, takeover, at):
        service = _clean_service(service)
        pid = os.getpid() if pid is None else int(pid)
        host = socket.gethostname()
        found = self._held(conn, service)
        previous = None
        if found is not None:
            held, holder_status = found
            if held["incident_id"] == incident_id:
                if (held["pid"], held["host"]) != (pid, host):
                    conn.execute("UPDATE locks SET pid = ?, host = ? WHERE service = ?", (pid, host, service))
                return dict(held, pid=pid, host=host, stale=False, changed=False, previous=None)
            previous = held
            if holder_status in (None, "resolved"):
                message = f"reclaimed the recovery lock on {service} left by incident {held['incident_id']}"
            elif not takeover:
                raise LockHeld(service, held["incident_id"], held["since"], held["pid"], held["stale"], held["host"])
            else:
                how = "stale" if held["stale"] else "live"
                message = (
                    f"took over the {how} recovery lock on {service} from incident {held['incident_id']} "
                    f"(held since {held['since']} by pid {held['pid']} on {held['host']})"
                )
                self._add_entry(
                    conn,
                    held["incident_id"],
                    "lock",
                    f"the recovery lock on {service} was taken over by incident {incident_id} (pid {pid})",
                    at=at,
                    action="lock_lost",
                )
        else:
            message = f"took the recovery lock on {service}"
        conn.execute(
            "INSERT OR REPLACE INTO locks (service, incident_id, since, pid, host) VALUES (?, ?, ?, ?, ?)",
            (service, incident_id, at, pid, host),
        )
        self._add_entry(conn, incident_id, "lock", message, at=at, action="lock")
        lock = {"service": service, "incident_id": incident_id, "since": at, "pid": pid, "host": host}
        return dict(lock, stale=lock_is_stale(pid, host), changed=True, previous=previous)

    def release_lock(self, service, incident_id):
        """Release ``incident_id``'s recovery lock on ``service``; False when it did not hold it."""
        service = _clean_service(service)
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM locks WHERE service = ? AND incident_id = ?", (service, incident_id))
            if not cursor.rowcount:
                return False
            self._add_entry(conn, incident_id, "lock", f"released the recovery lock on {service}", action="unlock")
            return True

    def locks(self):
        """Every recovery lock held, by service, each with ``stale``."""
        with self._sqlite_errors():
            rows = self._conn.execute("SELECT * FROM locks ORDER BY service").fetchall()
        return [self._lock(row) for row in rows]
