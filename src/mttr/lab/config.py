"""The lab's configuration: ports, paths and credentials, kept in ``<home>/lab.json``."""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.mttr.recovery.plugins.module_utils.lab_state import (
    LabStateError,
    default_home,
    load_state,
    state_path,
)

from .process import LabError

# Below Linux's ephemeral range (32768-60999): a port in it can be held by any client's connection or
# TIME_WAIT, and 'up' would refuse a port no program listens on.
DEFAULT_PORT_BASE = 24300
# Offsets from the port base; every port is on 127.0.0.1 only.
PORT_OFFSETS = {"pg1": 1, "pg2": 2, "lb_db": 10, "lb_http": 20, "app": 30, "s3": 40}
PORT_NAMES = {
    "pg1": "PostgreSQL pg1",
    "pg2": "PostgreSQL pg2",
    "lb_db": "HAProxy write endpoint",
    "lb_http": "HAProxy web frontend",
    "app": "lab app",
    "s3": "S3 endpoint (moto)",
}
NODES = ("pg1", "pg2")
BUCKET = "mttr-backups"
DB_NAME = "orders"
SUPERUSER = "mttr"
APP_USER = "app"


def find_pg_bin() -> str:
    """Locate PostgreSQL's server binaries (Debian keeps them out of PATH)."""
    if os.environ.get("MTTR_PG_BIN"):
        candidates = [os.environ["MTTR_PG_BIN"]]
    else:
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
        candidates = versions + ([os.path.dirname(shutil.which("initdb"))] if shutil.which("initdb") else [])
    for directory in candidates:
        if all(os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return directory
    raise LabError(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH): "
        "install Debian's postgresql (scripts/setup does it) or set MTTR_PG_BIN"
    )


def find_haproxy() -> str:
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not path:
        raise LabError("haproxy not found: install Debian's haproxy (scripts/setup does it: apt-get install haproxy)")
    return path


def port_base_from(value: int | str | None) -> int:
    raw = value if value is not None else os.environ.get("MTTR_LAB_PORT_BASE", DEFAULT_PORT_BASE)
    try:
        base = int(raw)
    except (TypeError, ValueError):
        raise LabError(f"port base must be a number, got {raw!r}") from None
    if not 1024 <= base <= 65535 - max(PORT_OFFSETS.values()):
        raise LabError(
            f"port base {base} is out of range: choose one between 1024 and {65535 - max(PORT_OFFSETS.values())}"
        )
    return base


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def service_user() -> str | None:
    """PostgreSQL refuses root: when root runs the lab, the servers run as ``postgres``."""
    if os.geteuid() != 0:
        return None
    user = os.environ.get("MTTR_LAB_PG_USER", "postgres")
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise LabError(
            f"running as root, the lab runs PostgreSQL as user '{user}', which does not exist: "
            "install Debian's postgresql (it creates the user) or set MTTR_LAB_PG_USER"
        ) from None
    return user


@dataclass
class LabConfig:
    home: Path
    state: dict

    @property
    def ports(self) -> dict[str, int]:
        return self.state["ports"]

    @property
    def run_as(self) -> str | None:
        return self.state.get("run_as")

    def path(self, *parts: str) -> Path:
        return self.home.joinpath(*parts)

    def save(self) -> None:
        path = Path(state_path(str(self.home)))
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.state, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)


def resolve_home(home: str | os.PathLike | None) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(home)))) if home else Path(default_home())


def load(home: str | os.PathLike | None) -> LabConfig:
    """Load an existing lab's configuration; LabError when there is none."""
    resolved = resolve_home(home)
    try:
        return LabConfig(resolved, load_state(str(resolved)))
    except LabStateError as exc:
        raise LabError(str(exc)) from None


def exists(home: str | os.PathLike | None) -> bool:
    return Path(state_path(str(resolve_home(home)))).exists()


def create(home: str | os.PathLike | None, port_base: int | str | None, python: str) -> LabConfig:
    """Create a new lab configuration (ports, credentials, paths) under ``home``."""
    resolved = resolve_home(home)
    base = port_base_from(port_base)
    ports = {name: base + offset for name, offset in PORT_OFFSETS.items()}
    state = {
        "format": 1,
        "home": str(resolved),
        "port_base": base,
        "ports": ports,
        "python": python,
        "pg_bin": find_pg_bin(),
        "run_as": service_user(),
        "primary": "pg1",
        "nodes": {name: {"port": ports[name], "data": str(resolved / "pg" / name)} for name in NODES},
        "db": {
            "name": DB_NAME,
            "superuser": SUPERUSER,
            "superuser_password": secrets.token_urlsafe(18),
            "app_user": APP_USER,
            "app_password": secrets.token_urlsafe(18),
            "socket_dir": str(resolved / "run" / "pg"),
        },
        "lb": {
            "admin_socket": str(resolved / "run" / "haproxy.sock"),
            "config": str(resolved / "haproxy" / "haproxy.cfg"),
            "db_backend": "db_primary",
            "app_backend": "app",
        },
        "app": {
            "root": str(resolved / "app"),
            "releases": str(resolved / "app" / "releases"),
            "current": str(resolved / "app" / "current"),
            "url": f"http://127.0.0.1:{ports['app']}",
            "public_url": f"http://127.0.0.1:{ports['lb_http']}",
        },
        "s3": {
            "endpoint_url": f"http://127.0.0.1:{ports['s3']}",
            "bucket": BUCKET,
            "region": "us-east-1",
            "access_key": "mttr-lab",
            "secret_key": secrets.token_urlsafe(18),
        },
    }
    return LabConfig(resolved, state)
