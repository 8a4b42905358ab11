"""The lab's other services: the S3 endpoint (moto), the web app releases, and HAProxy."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import jinja2

from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime, HAProxyRuntimeError
from ansible_collections.mttr.recovery.plugins.module_utils.snapshot_release import ReleaseProvider

from .config import LabConfig, find_haproxy
from .process import LabError, Tracked, run, start_and_wait, wait_for

PACKAGE = Path(__file__).parent


def http_get(url: str, timeout: float = 2.0) -> tuple[int | None, dict | str]:
    """GET ``url``; return (status, JSON body or text), or (None, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (OSError, urllib.error.URLError) as exc:
        return None, str(getattr(exc, "reason", exc))
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


class ObjectStore:
    """moto's standalone server: an S3-compatible endpoint (and the other AWS APIs) on loopback."""

    def __init__(self, cfg: LabConfig):
        self.cfg = cfg
        self.dir = cfg.path("objstore")
        self.tracked = Tracked("S3 endpoint (moto)", cfg.path("run", "objstore.pid"), str(self.dir))

    def client(self, service: str = "s3"):
        s3 = self.cfg.state["s3"]
        return boto3.client(
            service,
            endpoint_url=s3["endpoint_url"],
            region_name=s3["region"],
            aws_access_key_id=s3["access_key"],
            aws_secret_access_key=s3["secret_key"],
            config=botocore.config.Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )

    def answers(self) -> bool:
        return http_get(self.cfg.state["s3"]["endpoint_url"] + "/moto-api/")[0] is not None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        start_and_wait(
            [self.cfg.state["python"], "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.cfg.ports["s3"])],
            what="the S3 endpoint (moto)",
            answers=self.answers,
            pidfile=self.tracked.pidfile,
            logfile=self.cfg.path("log", "objstore.log"),
            cwd=self.dir,
        )

    def ensure_bucket(self) -> None:
        client = self.client()
        bucket = self.cfg.state["s3"]["bucket"]
        try:
            client.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError:
            client.create_bucket(Bucket=bucket)

    def buckets(self) -> list[str]:
        return [b["Name"] for b in self.client().list_buckets().get("Buckets", [])]


class App:
    """The orders web app, deployed Capistrano-style: ``releases/<version>/`` and ``current``."""

    def __init__(self, cfg: LabConfig):
        self.cfg = cfg
        self.root = Path(cfg.state["app"]["root"])
        self.releases = Path(cfg.state["app"]["releases"])
        self.current = Path(cfg.state["app"]["current"])
        self.entry = self.current / "app.py"
        self.tracked = Tracked("lab app", cfg.path("run", "app.pid"), str(self.entry))

    def replacements(self) -> list[Tracked]:
        """App instances started beside the lab's own (the replace role): ``run/app-<server>.pid`` each."""
        return [
            Tracked(f"lab app {pidfile.stem.removeprefix('app-')}", pidfile, str(self.entry))
            for pidfile in sorted(self.cfg.path("run").glob("app-*.pid"))
        ]

    def write_shared_config(self) -> None:
        shared = self.root / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        db = self.cfg.state["db"]
        config = {
            "port": self.cfg.ports["app"],
            "db": {
                "host": "127.0.0.1",
                "port": self.cfg.ports["lb_db"],
                "dbname": db["name"],
                "user": db["app_user"],
                "password": db["app_password"],
            },
        }
        path = shared / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)

    def versions(self) -> list[str]:
        if not self.releases.is_dir():
            return []
        return sorted(
            (p.name for p in self.releases.iterdir() if (p / "release.json").exists()),
            key=lambda v: [int(x) if x.isdigit() else x for x in v.split(".")],
        )

    def current_version(self) -> str | None:
        try:
            return os.path.basename(os.readlink(self.current))
        except OSError:
            return None

    def next_version(self) -> str:
        versions = self.versions()
        if not versions:
            return "1.0.0"
        major, minor, patch = [*versions[-1].split("."), "0", "0"][:3]
        return f"{major}.{minor}.{int(patch) + 1}"

    def deploy(self, version: str, overrides: dict | None = None, note: str = "") -> Path:
        """Unpack a release next to the others and switch ``current`` to it atomically."""
        self.write_shared_config()
        release = self.releases / version
        if release.exists():
            raise LabError(f"release {version} already exists under {self.releases}")
        staging = self.releases / f".{version}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(PACKAGE / "app" / "app.py", staging / "app.py")
        manifest = {"version": version, "note": note, **(overrides or {})}
        (staging / "release.json").write_text(json.dumps(manifest, indent=2) + "\n")
        staging.rename(release)
        self.switch(version)
        return release

    def switch(self, version: str) -> None:
        """Point ``current`` at ``version`` atomically, recorded the way the rollback engine reads it."""
        ReleaseProvider(str(self.releases), str(self.current)).activate(version, action="deploy")

    def answers(self) -> bool:
        return http_get(self.cfg.state["app"]["url"] + "/version", timeout=1)[0] is not None

    def start(self) -> None:
        if not self.entry.exists():
            raise LabError(f"no release is deployed at {self.current}: run 'mttr lab up' to deploy one")
        start_and_wait(
            [self.cfg.state["python"], str(self.entry)],
            what="the lab app",
            answers=self.answers,
            pidfile=self.tracked.pidfile,
            logfile=self.cfg.path("log", "app.log"),
            cwd=self.root,
        )

    def health(self, via_lb: bool = False) -> tuple[int | None, dict | str]:
        base = self.cfg.state["app"]["public_url" if via_lb else "url"]
        return http_get(base + "/health")


class HAProxy:
    def __init__(self, cfg: LabConfig):
        self.cfg = cfg
        self.config = Path(cfg.state["lb"]["config"])
        self.tracked = Tracked("HAProxy", cfg.path("run", "haproxy.pid"), str(self.config))
        self.runtime = HAProxyRuntime(cfg.state["lb"]["admin_socket"])

    def render(self, primary: str) -> None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined,
            autoescape=False,
        )
        nodes = [
            {"name": name, "port": node["port"], "active": name == primary}
            for name, node in self.cfg.state["nodes"].items()
        ]
        text = env.get_template("haproxy.cfg.j2").render(
            pidfile=self.tracked.pidfile,
            admin_socket=self.cfg.state["lb"]["admin_socket"],
            ports=self.cfg.ports,
            nodes=nodes,
            db_user=self.cfg.state["db"]["superuser"],
        )
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text)

    def answers(self) -> bool:
        try:
            self.runtime.command("show info")
        except HAProxyRuntimeError:
            return False
        return True

    def start(self, primary: str) -> None:
        self.render(primary)
        binary = find_haproxy()
        run([binary, "-c", "-f", str(self.config)], what="checking the HAProxy configuration")
        run([binary, "-D", "-f", str(self.config), "-p", str(self.tracked.pidfile)], what="starting HAProxy")
        if not wait_for(self.answers, 10):
            raise LabError(f"HAProxy did not open its runtime API at {self.runtime.socket_path}")
