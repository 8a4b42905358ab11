"""One size of the backup_restore benchmark: its data and backups, then rounds of restores, the raw
tools and the module interleaved, each timed after ``sync`` and ``CHECKPOINT``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

from ansible_collections.mttr.recovery.bench.backup_restore.data import (
    DATABASE,
    MIB,
    database_fingerprint,
    generate_database,
    generate_tree,
    tree_stats,
)
from ansible_collections.mttr.recovery.bench.common import TIME_BIN, TIME_FORMAT, loadavg, log, time_records
from ansible_collections.mttr.recovery.plugins.module_utils.backup_files import tree_digest

# the task names in playbooks/
RESTORE_TASK = "backup_restore: one restore"
BACKUP_TASK = "backup: one backup"
PING_TASK = "ping: one module run"


def timed(argv, env=None, cwd=None):
    """Run ``argv`` under /usr/bin/time; return wall seconds (measured here) and time's figures."""
    fd, out = tempfile.mkstemp(prefix="mttr-bench-time-")
    os.close(fd)
    try:
        started = time.perf_counter()
        result = subprocess.run(
            [TIME_BIN, "-o", out, "-f", TIME_FORMAT, *[str(a) for a in argv]],
            env=dict(os.environ, **(env or {})),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        if result.returncode:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
        return round(wall, 4), time_records(out)[-1]
    finally:
        os.unlink(out)


def sync():
    subprocess.run(["sync"], check=True)


class SizeBench:
    """Data, backups and restores at one size; everything it creates lives under ``self.root`` or in ``server``."""

    def __init__(self, root, runner, server, size_mb, jobs, kinds):
        self.root = root
        self.runner = runner
        self.server = server
        self.size_mb = size_mb
        self.jobs = jobs
        self.kinds = kinds
        self.repo = root / "repository"
        self.repo.mkdir()
        self.data = {"size_mb": size_mb, "jobs": jobs}
        self.raw = {"ping": []}
        for kind in kinds:
            self.raw[f"{kind}_raw"] = []
            self.raw[f"{kind}_module"] = []
        self.raw_seq = 0

    # -------------------------------------------------------------- setup
    def pg_vars(self):
        return {
            "bench_repo": str(self.repo),
            "bench_database": DATABASE,
            "bench_port": self.server.port,
            "bench_user": self.server.user,
            "bench_password": self.server.password,
            "bench_pg_bin": str(self.server.pg_bin),
            "bench_jobs": self.jobs,
            "bench_tmp": str(self.root),
        }

    def pg_env(self):
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.server.port),
            "PGUSER": self.server.user,
            "PGPASSWORD": self.server.password,
        }

    def backup(self, playbook, variables):
        """A backup by the collection's module: its run, its id, its one artifact and where that is."""
        run = self.runner.run(playbook, BACKUP_TASK, variables)
        manifest = run.pop("res")["backup"]
        artifact = manifest["artifacts"][0]
        return run, manifest["id"], artifact, self.repo / manifest["id"] / artifact["name"]

    def setup(self):
        if "postgres" in self.kinds:
            log(f"[{self.size_mb} MB] generating the database...")
            self.data["postgres"] = generate_database(self.server, self.size_mb)
            log(f"[{self.size_mb} MB] database: {self.data['postgres']}")
            backup, backup_id, artifact, self.dump = self.backup("backup_postgres.yml", self.pg_vars())
            self.data["postgres"].update(
                backup_id=backup_id,
                dump_bytes=artifact["size"],
                backup_run=backup,
            )
            log(f"[{self.size_mb} MB] dump: {artifact['size'] / MIB:.1f} MiB in {backup['task_s']:.1f} s")
        if "files" in self.kinds:
            source = self.root / "source" / "tree"
            source.mkdir(parents=True)
            log(f"[{self.size_mb} MB] generating the file tree...")
            self.data["files"] = generate_tree(source, self.size_mb)
            files, size = tree_stats(source)
            self.source_digest = tree_digest(source)
            self.data["files"].update(files_counted=files, bytes_counted=size)
            variables = {"bench_repo": str(self.repo), "bench_path": str(source)}
            backup, backup_id, artifact, self.archive = self.backup("backup_files.yml", variables)
            self.data["files"].update(
                backup_id=backup_id,
                archive_bytes=artifact["size"],
                members=artifact.get("members"),
                compression=artifact.get("compression"),
                backup_run=backup,
            )
            log(f"[{self.size_mb} MB] tree: {self.data['files']}")
            # the restore target: an existing (damaged) tree, replaced by every module run
            self.target = self.root / "restore" / "tree"
            self.target.mkdir(parents=True)
            (self.target / "damaged.txt").write_text("damaged\n")
        sync()

    # -------------------------------------------------------------- timed runs
    def quiesce(self):
        """Untimed: flush dirty pages and checkpoint, so a run does not pay for the previous one's writes."""
        if "postgres" in self.kinds:
            self.server.query("postgres", "CHECKPOINT")
        sync()

    def postgres_raw(self, check):
        pg_bin = self.server.pg_bin
        self.raw_seq += 1
        name = f"raw_{self.raw_seq}"
        self.quiesce()
        load = loadavg()[0]
        started = time.perf_counter()
        createdb_s, createdb = timed([pg_bin / "createdb", "-T", "template0", name], self.pg_env())
        restore_s, restore = timed(
            [pg_bin / "pg_restore", "-j", self.jobs, "--exit-on-error", "-d", name, self.dump], self.pg_env()
        )
        wall = round(time.perf_counter() - started, 4)
        run = {"wall_s": wall, "createdb_s": createdb_s, "pg_restore_s": restore_s, "pg_restore": restore}
        run.update(createdb_process=createdb, loadavg_1m=load)
        if check:
            run["fingerprint_ok"] = database_fingerprint(self.server, name) == self.data["postgres"]["fingerprint"]
        with self.server.connect() as conn:
            conn.execute(f'DROP DATABASE "{name}"')
        return run

    def restore_task(self, playbook, variables, artifact_bytes):
        """Run the backup_restore task; its figures, and the module's result (checked: verified, whole)."""
        run = self.runner.run(playbook, RESTORE_TASK, variables)
        res = run.pop("res")
        run["module_duration_s"] = res.get("duration_s")
        run["verification"] = res.get("verification")
        run["bytes"] = res.get("bytes")
        if res.get("verification") != "sha256" or res.get("bytes") != artifact_bytes:
            raise RuntimeError(f"unexpected restore result: {res}")
        return run, res

    def postgres_module(self, check):
        self.quiesce()
        run, res = self.restore_task("restore_postgres.yml", self.pg_vars(), self.data["postgres"]["dump_bytes"])
        if check:
            run["fingerprint_ok"] = database_fingerprint(self.server, DATABASE) == self.data["postgres"]["fingerprint"]
        if res.get("safety_copy"):
            with self.server.connect() as conn:
                conn.execute(f'DROP DATABASE "{res["safety_copy"]}"')
        return run

    def files_raw(self, check):
        self.raw_seq += 1
        destination = self.root / "raw" / f"tree-{self.raw_seq}"
        destination.mkdir(parents=True)
        self.quiesce()
        load = loadavg()[0]
        wall, process = timed(["tar", "-xzf", self.archive, "-C", destination])
        run = {"wall_s": wall, "tar": process, "loadavg_1m": load}
        if check:
            run["digest_ok"] = tree_digest(destination) == self.source_digest
        # kept until the end of this size: deleting 10,000s of files makes ext4 skip the recently deleted
        # inodes when the next run creates files (find_inode_bit -> recently_deleted), which slowed file
        # creation 2-4x for the following runs in trials
        return run

    def files_module(self, check):
        self.quiesce()
        variables = {"bench_repo": str(self.repo), "bench_path": str(self.target)}
        run, _res = self.restore_task("restore_files.yml", variables, self.data["files"]["archive_bytes"])
        if check:
            run["digest_ok"] = tree_digest(self.target) == self.source_digest
        # the safety copy (the previous tree) is kept until the end of this size, as the raw copies are
        return run

    def sha256sum(self, path):
        """What verifying the artifact separately would cost a careful operator (``sha256sum``)."""
        wall, process = timed(["sha256sum", path])
        return {"wall_s": wall, "process": process}

    def rounds(self, runs):
        for number in range(runs):
            check = number == 0
            self.raw["ping"].append(self.runner.run("ping.yml", PING_TASK))
            self.raw["ping"][-1].pop("res", None)
            for kind in self.kinds:
                order = ("raw", "module") if number % 2 == 0 else ("module", "raw")
                for side in order:
                    run = getattr(self, f"{kind}_{side}")(check)
                    self.raw[f"{kind}_{side}"].append(run)
                    took = run.get("task_s", run.get("wall_s"))
                    log(
                        f"[{self.size_mb} MB] #{number + 1} {kind} {side}: {took:.2f} s"
                        + (
                            f" (module {run['module_duration_s']:.2f} s,"
                            f" rss {run['module_process']['maxrss_kb'] / 1024:.0f} MB)"
                            if side == "module"
                            else ""
                        )
                        + f", load {run['loadavg_1m']}"
                    )
            self.raw.setdefault("sha256sum", {})
            for kind, path in (("postgres", "dump"), ("files", "archive")):
                if kind in self.kinds:
                    self.raw["sha256sum"].setdefault(kind, []).append(self.sha256sum(getattr(self, path)))

    def teardown(self):
        if "postgres" in self.kinds:
            with self.server.connect() as conn:
                rows = conn.execute(
                    "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')"
                ).fetchall()
                for (name,) in rows:
                    conn.execute(f'DROP DATABASE "{name}"')
        shutil.rmtree(self.root, ignore_errors=True)
