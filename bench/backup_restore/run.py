"""Benchmark for issue "backup_restore": restoring a 500 MB database dump and a 500 MB file tree.

For each size asked for (``--size-mb``, default 500), the benchmark builds its own data, takes the backups
with the collection's own ``mttr.recovery.backup`` module into a local directory repository, then times
restores of those same artifacts, interleaved round by round:

- postgres, raw: ``createdb -T template0 <new>`` + ``pg_restore -j N --exit-on-error -d <new> <dump>``, the
  dump read straight from the repository (the same file the module restores);
- postgres, module: ONE ``mttr.recovery.backup_restore`` task (``kind: postgres``, ``jobs: N``, ``force``),
  which verifies the dump's sha256, restores into a staging database and renames it in (the old database is
  kept as the safety copy, dropped after the run, untimed);
- files, raw: ``tar -xzf <archive> -C <empty dir>`` (GNU tar, gzip in a second process);
- files, module: ONE ``backup_restore`` task (``kind: files``, ``force``), which extracts into a staging
  directory while hashing, verifies, and swaps it in (the old tree is kept as the safety copy, removed after
  the run, untimed);
- ``ansible.builtin.ping``: the fixed cost of running any module as a task.

The raw commands run under ``/usr/bin/time`` (wall, CPU, peak RSS). The module tasks run through
ansible-runner (``ansible-playbook``, ``gather_facts: false``, ``ansible_connection: local``) with
``ansible_python_interpreter`` set to a wrapper that runs the venv's python under ``/usr/bin/time``: its
``%M`` is the peak RSS of the module process (for postgres: the largest of it and its children, which
include ``pg_restore`` and its workers; GNU time reports the maximum over the waited-for process tree).
Extracted trees (raw copies and the module's safety copies) are kept until the end of a size: deleting
them between runs slows the next run's file creation (ext4 skips recently deleted inodes).
The task time is the ``duration`` of the task's ``runner_on_ok`` job event; the module's own ``duration_s``
is recorded too. Before every timed run: ``sync`` and ``CHECKPOINT`` (untimed), so no run pays for the
previous one's writeback. The repository's artifacts are in the page cache for every run (24 GB RAM).

    .venv/bin/python bench/backup_restore/run.py [--size-mb MB ...] [--runs N] [--jobs N] [--json [PATH]]
        [--kinds postgres,files] [--keep] [--report PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.common import loadavg, log, median, spread
from ansible_collections.mttr.recovery.bench.common import machine_facts as common_machine_facts

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "results.json"
TIME_BIN = "/usr/bin/time"
TIME_FORMAT = "elapsed_s=%e maxrss_kb=%M user_s=%U sys_s=%S"
TARGET_RATIO = 1.1
TARGET_MB = 200.0
MIB = 1024 * 1024
DATABASE = "shop"
RESTORE_TASK = "backup_restore: one restore"
BACKUP_TASK = "backup: one backup"
PING_TASK = "ping: one module run"

PLAY_HEAD = """\
- name: mttr.recovery backup_restore benchmark
  hosts: localhost
  gather_facts: false
  tasks:
"""
REPOSITORY = """\
        repository:
          type: local
          path: "{{ bench_repo }}"
"""
POSTGRES_ARGS = """\
        kind: postgres
        database: "{{ bench_database }}"
        login_host: 127.0.0.1
        port: "{{ bench_port | int }}"
        login_user: "{{ bench_user }}"
        login_password: "{{ bench_password }}"
        pg_bin: "{{ bench_pg_bin }}"
"""
PLAYBOOKS = {
    "ping.yml": PLAY_HEAD + f'    - name: "{PING_TASK}"\n      ansible.builtin.ping:\n',
    "backup_postgres.yml": PLAY_HEAD
    + f'    - name: "{BACKUP_TASK}"\n      mttr.recovery.backup:\n'
    + POSTGRES_ARGS
    + '        tmp_dir: "{{ bench_tmp }}"\n'
    + REPOSITORY,
    "backup_files.yml": PLAY_HEAD
    + f'    - name: "{BACKUP_TASK}"\n      mttr.recovery.backup:\n'
    + '        kind: files\n        path: "{{ bench_path }}"\n'
    + REPOSITORY,
    "restore_postgres.yml": PLAY_HEAD
    + f'    - name: "{RESTORE_TASK}"\n      mttr.recovery.backup_restore:\n'
    + POSTGRES_ARGS
    + '        jobs: "{{ bench_jobs | int }}"\n        force: true\n'
    + REPOSITORY,
    "restore_files.yml": PLAY_HEAD
    + f'    - name: "{RESTORE_TASK}"\n      mttr.recovery.backup_restore:\n'
    + '        kind: files\n        path: "{{ bench_path }}"\n        force: true\n'
    + REPOSITORY,
}


# ----------------------------------------------------------------------------- machine


def machine_facts():
    def first_line(argv):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()[0]
        return None

    from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.backup_fixtures import PG_BIN

    return common_machine_facts(
        psycopg=importlib.metadata.version("psycopg"),
        pg_restore=first_line([str(PG_BIN / "pg_restore"), "--version"]),
        tar=first_line(["tar", "--version"]),
        gzip=first_line(["gzip", "--version"]),
    )


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
        lines = [ln for ln in Path(out).read_text(encoding="utf-8").splitlines() if "maxrss_kb=" in ln]
        fields = dict(item.split("=") for item in lines[-1].split())
        return round(wall, 4), {key: float(value) for key, value in fields.items()}
    finally:
        os.unlink(out)


def interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers():
    """SIGINT and SIGTERM raise KeyboardInterrupt, so the cleanup in main() always runs."""
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)


def sync():
    subprocess.run(["sync"], check=True)


# ----------------------------------------------------------------------------- data


def generate_database(server, size_mb):
    """Three related tables sized so that ``pg_dump -Fc -Z1`` comes to about ``size_mb`` MiB.

    ``orders`` (rows of ids, times, a status, an amount and a 65-character hex note: compresses about 2x) is
    about half of the dump; ``documents`` (2 KB bytea bodies of chained sha256 digests: incompressible, stored
    in TOAST) the other half; ``customers`` is small. Primary keys, a foreign key and a secondary index, so
    the restore builds indexes and checks constraints as a real one does. Deterministic (no random()).
    """
    customers = max(1000, size_mb * 40)
    orders = size_mb * 6200
    documents = size_mb * 300
    server.create_database(DATABASE)
    started = time.perf_counter()
    with server.connect(DATABASE) as conn:
        conn.execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL,"
            " created_at timestamptz NOT NULL)"
        )
        conn.execute(
            "INSERT INTO customers SELECT i, 'customer ' || md5('n' || i),"
            " 'c' || i || '@' || substr(md5('d' || i), 1, 10) || '.example',"
            " timestamptz '2024-01-01' + i * interval '17 seconds' FROM generate_series(1, %s) i",
            (customers,),
        )
        conn.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,"
            " created_at timestamptz NOT NULL, status text NOT NULL, amount numeric(12,2) NOT NULL, note text)"
        )
        conn.execute(
            "INSERT INTO orders SELECT i, 1 + (i::bigint * 7919) %% %s,"
            " timestamptz '2024-01-01' + i * interval '3 seconds',"
            " (ARRAY['new','paid','shipped','delivered','refunded'])[1 + i %% 5],"
            " ((i::bigint * 104729) %% 100000) / 100.0, md5('o' || i) || ' ' || md5('p' || i)"
            " FROM generate_series(1, %s) i",
            (customers, orders),
        )
        conn.execute("CREATE INDEX orders_customer ON orders (customer_id, created_at)")
        conn.execute(
            "CREATE TABLE documents (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders,"
            " kind text NOT NULL, body bytea NOT NULL)"
        )
        conn.execute(
            "INSERT INTO documents SELECT i, 1 + (i::bigint * 31) %% %s, 'invoice',"
            " (SELECT string_agg(sha256(int8send(i) || int4send(j)), '' ORDER BY j) FROM generate_series(1, 64) j)"
            " FROM generate_series(1, %s) i",
            (orders, documents),
        )
        conn.execute("VACUUM ANALYZE")
    return {
        "rows": {"customers": customers, "orders": orders, "documents": documents},
        "generate_s": round(time.perf_counter() - started, 2),
        "database_bytes": server.query(DATABASE, "SELECT pg_database_size(current_database())")[0][0],
        "fingerprint": database_fingerprint(server, DATABASE),
    }


def database_fingerprint(server, database):
    """Row counts and content sums: equal after a correct restore."""
    row = server.query(
        database,
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT sum(amount) FROM orders),"
        " (SELECT sum(length(note)) FROM orders), (SELECT count(*) FROM documents),"
        " (SELECT sum(get_byte(body, 100) + get_byte(body, 2000)) FROM documents),"
        " (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')",
    )[0]
    return [str(value) for value in row]


TEXT_WORDS = [
    "GET",
    "POST",
    "PUT",
    "200",
    "201",
    "204",
    "301",
    "304",
    "400",
    "401",
    "403",
    "404",
    "409",
    "500",
    "502",
    "503",
    "/api/v1/orders",
    "/api/v1/customers",
    "/health",
    "/static/app.js",
    "/static/site.css",
    "checkout",
    "cart",
    "payment",
    "shipped",
    "refunded",
    "user=alice",
    "user=bob",
    "user=carol",
    "latency_ms=",
    "bytes=",
    "INFO",
    "WARN",
    "ERROR",
    "DEBUG",
    "request_id=",
    "trace=",
    "span=",
    '{"id":',
    '"status":',
    '"amount":',
]


def text_pool(rng, size):
    """Log- and JSON-like text (gzip -1 makes it about 3-4x smaller)."""
    lines = []
    total = 0
    while total < size:
        line = (
            f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z "
            + " ".join(
                rng.choice(TEXT_WORDS) + (str(rng.randint(0, 99999)) if rng.random() < 0.4 else "")
                for _word in range(rng.randint(6, 18))
            )
            + f" id={rng.getrandbits(64):016x}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def generate_tree(root, size_mb, seed=20261123):
    """A tree of about ``size_mb`` MiB: many small text files, medium binaries, a few big files of each kind.

    By bytes about 20% small text files (1-16 KiB: configs, JSON, logs), 30% medium incompressible files
    (64 KiB-1 MiB: images, archives), 50% big files (4-32 MiB, alternately log text and incompressible data);
    about 100 files per directory, two levels deep. Deterministic (seeded).
    """
    rng = random.Random(seed)
    started = time.perf_counter()
    pool = text_pool(rng, 8 * MIB)
    budget = size_mb * MIB
    files = 0
    total = 0

    def text(size):
        offset = rng.randrange(0, len(pool) - size)
        return pool[offset : offset + size]

    def write(relative, data):
        nonlocal files, total
        path = root / relative
        if files % 100 == 0 or not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files += 1
        total += len(data)

    tiers = [  # (name, cumulative share of the bytes, content, suffix)
        ("static", 0.20, lambda: text(rng.randint(1024, 16 * 1024)), ".json"),
        ("media", 0.50, lambda: rng.randbytes(rng.randint(64 * 1024, MIB)), ".bin"),
    ]
    for name, share, make, suffix in tiers:
        index = 0
        while total < budget * share:
            write(f"{name}/{index // 10000:02d}/{index // 100 % 100:02d}/{name}-{index:06d}{suffix}", make())
            index += 1
    index = 0
    while total < budget:
        size = min(rng.randint(4 * MIB, 32 * MIB), max(budget - total, 1024))
        if index % 2:
            data = rng.randbytes(size)
        else:
            data = b"".join(text(MIB) for _block in range(size // MIB)) + text(size % MIB + 1)[: size % MIB]
        write(f"large/{index:03d}-{'blob.bin' if index % 2 else 'app.log'}", data)
        index += 1
    os.symlink("large/000-app.log", root / "current.log")
    (root / "private").mkdir()
    (root / "private" / "key.pem").write_bytes(b"not a key\n")
    (root / "private" / "key.pem").chmod(0o600)
    (root / "private").chmod(0o700)
    return {"files": files + 1, "tree_bytes": total + 10, "generate_s": round(time.perf_counter() - started, 2)}


def tree_stats(root):
    files = 0
    size = 0
    for parent, _dirs, names in os.walk(root):
        for name in names:
            info = os.lstat(os.path.join(parent, name))
            files += 1
            size += info.st_size if not os.path.islink(os.path.join(parent, name)) else 0
    return files, size


# ----------------------------------------------------------------------------- ansible-runner


class Runner:
    """A private data dir for ansible-runner with the inventory, the playbooks and the time wrapper."""

    def __init__(self, root, keep=False):
        import ansible_runner  # noqa: F401 (fail early when it is missing)

        self.dir = root / "runner"
        self.runs = 0
        project = self.dir / "project"
        inventory = self.dir / "inventory"
        project.mkdir(parents=True)
        inventory.mkdir()
        self.time_log = self.dir / "module-time.log"
        self.wrapper = self.dir / "python-under-time"
        self.wrapper.write_text(
            f"#!/bin/sh\nexec {TIME_BIN} -a -o {self.time_log} -f '{TIME_FORMAT}' {sys.executable} \"$@\"\n",
            encoding="utf-8",
        )
        self.wrapper.chmod(0o755)
        (inventory / "hosts.yml").write_text(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
            f"      ansible_python_interpreter: {self.wrapper}\n",
            encoding="utf-8",
        )
        for name, text in PLAYBOOKS.items():
            (project / name).write_text(text, encoding="utf-8")
        self.keep = keep

    def run(self, playbook, task, extravars=None):
        """Run a playbook; return its wall time, the task's duration and result, and the module process."""
        import ansible_runner

        self.runs += 1
        self.time_log.unlink(missing_ok=True)
        result = {"playbook": playbook, "loadavg_1m": loadavg()[0]}
        started = time.perf_counter()
        runner = ansible_runner.run(
            private_data_dir=str(self.dir),
            playbook=playbook,
            extravars=dict(extravars or {}),
            ident=f"{self.runs:03d}-{Path(playbook).stem}",
            quiet=True,
        )
        result["playbook_s"] = round(time.perf_counter() - started, 4)
        # ansible-runner replaces the SIGINT and SIGTERM handlers with its own (they only cancel its run) and
        # leaves them installed: put ours back, so an interruption outside a run still cleans up
        install_signal_handlers()
        if runner.status == "canceled":
            raise KeyboardInterrupt(f"{playbook} was cancelled")
        if runner.rc != 0:
            tail = runner.stdout.read()[-3000:]
            raise RuntimeError(f"{playbook} failed (rc {runner.rc}, {runner.status}):\n{tail}")
        for event in runner.events:
            data = event.get("event_data", {})
            if event.get("event") == "runner_on_ok" and data.get("task") == task:
                result["task_s"] = round(data["duration"], 4)
                result["res"] = data.get("res", {})
        if "task_s" not in result:
            raise RuntimeError(f"{playbook}: no runner_on_ok event for task {task!r}")
        lines = [ln for ln in self.time_log.read_text(encoding="utf-8").splitlines() if "maxrss_kb=" in ln]
        if len(lines) != 1:
            raise RuntimeError(f"expected one module process in {self.time_log}, got {len(lines)}")
        fields = dict(item.split("=") for item in lines[0].split())
        result["module_process"] = {key: float(value) for key, value in fields.items()}
        return result


# ----------------------------------------------------------------------------- one size


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
        from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.backup_fixtures import PG_BIN

        return {
            "bench_repo": str(self.repo),
            "bench_database": DATABASE,
            "bench_port": self.server.port,
            "bench_user": self.server.user,
            "bench_password": self.server.password,
            "bench_pg_bin": str(PG_BIN),
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

    def setup(self):
        if "postgres" in self.kinds:
            log(f"[{self.size_mb} MB] generating the database...")
            self.data["postgres"] = generate_database(self.server, self.size_mb)
            log(f"[{self.size_mb} MB] database: {self.data['postgres']}")
            backup = self.runner.run("backup_postgres.yml", BACKUP_TASK, self.pg_vars())
            manifest = backup.pop("res")["backup"]
            artifact = manifest["artifacts"][0]
            self.dump = self.repo / manifest["id"] / artifact["name"]
            self.data["postgres"].update(
                backup_id=manifest["id"],
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
            from ansible_collections.mttr.recovery.plugins.module_utils.backup_files import tree_digest

            self.source_digest = tree_digest(source)
            self.data["files"].update(files_counted=files, bytes_counted=size)
            backup = self.runner.run(
                "backup_files.yml", BACKUP_TASK, {"bench_repo": str(self.repo), "bench_path": str(source)}
            )
            manifest = backup.pop("res")["backup"]
            artifact = manifest["artifacts"][0]
            self.archive = self.repo / manifest["id"] / artifact["name"]
            self.data["files"].update(
                backup_id=manifest["id"],
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
        from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.backup_fixtures import PG_BIN

        self.raw_seq += 1
        name = f"raw_{self.raw_seq}"
        self.quiesce()
        load = loadavg()[0]
        started = time.perf_counter()
        createdb_s, createdb = timed([PG_BIN / "createdb", "-T", "template0", name], self.pg_env())
        restore_s, restore = timed(
            [PG_BIN / "pg_restore", "-j", self.jobs, "--exit-on-error", "-d", name, self.dump], self.pg_env()
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
            from ansible_collections.mttr.recovery.plugins.module_utils.backup_files import tree_digest

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
            from ansible_collections.mttr.recovery.plugins.module_utils.backup_files import tree_digest

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


# ----------------------------------------------------------------------------- report


def summarize_size(data, raw):
    summary = {"ping_task_s": spread([r["task_s"] for r in raw["ping"]])}
    summary["ping_module_process_maxrss_mb"] = median([r["module_process"]["maxrss_kb"] / 1024 for r in raw["ping"]])
    for kind in ("postgres", "files"):
        if f"{kind}_raw" not in raw:
            continue
        raws, mods = raw[f"{kind}_raw"], raw[f"{kind}_module"]
        tool = "pg_restore" if kind == "postgres" else "tar"
        entry = {
            "raw_s": spread([r["wall_s"] for r in raws]),
            "raw_tool_maxrss_mb": max(r[tool]["maxrss_kb"] / 1024 for r in raws),
            "raw_tool_cpu_s": spread([r[tool]["user_s"] + r[tool]["sys_s"] for r in raws]),
            "task_s": spread([r["task_s"] for r in mods]),
            "playbook_s": spread([r["playbook_s"] for r in mods]),
            "module_duration_s": spread([r["module_duration_s"] for r in mods]),
            "module_process_wall_s": spread([r["module_process"]["elapsed_s"] for r in mods]),
            "module_process_cpu_s": spread(
                [r["module_process"]["user_s"] + r["module_process"]["sys_s"] for r in mods]
            ),
            "module_process_maxrss_mb": max(r["module_process"]["maxrss_kb"] / 1024 for r in mods),
            "pairwise_ratio": spread([m["task_s"] / r["wall_s"] for m, r in zip(mods, raws)]),
            "loadavg_1m": spread([r["loadavg_1m"] for r in raws + mods]),
            "checks_ok": all(r.get("fingerprint_ok", r.get("digest_ok", True)) for r in raws + mods),
            "sha256sum_s": spread([r["wall_s"] for r in raw.get("sha256sum", {}).get(kind, [])]),
        }
        if kind == "postgres":
            entry["raw_createdb_s"] = spread([r["createdb_s"] for r in raws])
        entry["ratio_task"] = round(entry["task_s"]["median"] / entry["raw_s"]["median"], 3)
        entry["ratio_module_duration"] = round(entry["module_duration_s"]["median"] / entry["raw_s"]["median"], 3)
        entry["ratio_task_minus_ping"] = round(
            (entry["task_s"]["median"] - summary["ping_task_s"]["median"]) / entry["raw_s"]["median"], 3
        )
        entry["targets"] = {
            "ratio_le_1_1": entry["ratio_task"] <= TARGET_RATIO,
            "rss_under_200_mb": entry["module_process_maxrss_mb"] < TARGET_MB,
        }
        summary[kind] = entry
    return summary


def fmt_spread(stats, digits=2):
    if not stats:
        return "-"
    return f"{stats['median']:.{digits}f} [{stats['min']:.{digits}f}-{stats['max']:.{digits}f}]"


def print_report(results):
    m = results["machine"]
    out = [
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_mb']} MB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, ansible-core {m['ansible_core']}, ansible-runner {m['ansible_runner']}, "
        f"{m['pg_restore']}, {m['tar']}; load average {m['loadavg_start']} -> {m.get('loadavg_end')}",
        f"{results['runs']} rounds per size, raw and module interleaved; seconds, median [min-max]",
    ]
    for size in results["sizes"]:
        data = size["data"]
        s = size["summary"]
        out.append("")
        out.append(f"== size {data['size_mb']} MB (jobs {data['jobs']})")
        if "postgres" in data:
            pg = data["postgres"]
            out.append(
                f"postgres: database {pg['database_bytes'] / MIB:.0f} MiB on disk, "
                f"dump {pg['dump_bytes'] / MIB:.0f} MiB "
                f"({pg['dump_bytes']} bytes), rows {pg['rows']}"
            )
        if "files" in data:
            fl = data["files"]
            out.append(
                f"files: {fl['files_counted']} files, "
                f"{fl['bytes_counted'] / MIB:.0f} MiB ({fl['bytes_counted']} bytes), "
                f"archive ({fl['compression']}) {fl['archive_bytes'] / MIB:.0f} MiB, {fl['members']} members"
            )
        kinds = [k for k in ("postgres", "files") if k in s]
        rows = [
            ("raw tool (wall)", lambda e: fmt_spread(e["raw_s"])),
            ("backup_restore task (runner event)", lambda e: fmt_spread(e["task_s"])),
            ("  module's own duration_s", lambda e: fmt_spread(e["module_duration_s"])),
            ("  module process wall (time %e)", lambda e: fmt_spread(e["module_process_wall_s"])),
            ("  module process CPU user+sys", lambda e: fmt_spread(e["module_process_cpu_s"])),
            ("playbook wall", lambda e: fmt_spread(e["playbook_s"])),
            ("RATIO task / raw (medians)", lambda e: f"{e['ratio_task']:.3f}x"),
            ("  per-round ratios", lambda e: fmt_spread(e["pairwise_ratio"], 3)),
            ("  module duration_s / raw", lambda e: f"{e['ratio_module_duration']:.3f}x"),
            ("  (task - ping task) / raw", lambda e: f"{e['ratio_task_minus_ping']:.3f}x"),
            ("module process peak RSS (max)", lambda e: f"{e['module_process_maxrss_mb']:.1f} MB"),
            ("raw tool peak RSS (max)", lambda e: f"{e['raw_tool_maxrss_mb']:.1f} MB"),
            ("raw tool CPU user+sys", lambda e: fmt_spread(e["raw_tool_cpu_s"])),
            ("sha256sum of the artifact", lambda e: fmt_spread(e["sha256sum_s"])),
            ("load average 1m during runs", lambda e: fmt_spread(e["loadavg_1m"], 1)),
            ("restored data checked", lambda e: "ok" if e["checks_ok"] else "MISMATCH"),
        ]
        out.append(f"{'':<38}" + "".join(f"{k:>28}" for k in kinds))
        for label, cell in rows:
            out.append(f"{label:<38}" + "".join(f"{cell(s[k]):>28}" for k in kinds))
        out.append(
            f"ping task: {fmt_spread(s['ping_task_s'])} s, its module process peak RSS "
            f"{s['ping_module_process_maxrss_mb']:.1f} MB"
        )
        for kind in kinds:
            t = s[kind]["targets"]
            out.append(
                f"targets {kind}: ratio <= {TARGET_RATIO}: {t['ratio_le_1_1']}; peak RSS < {TARGET_MB:.0f} MB: "
                f"{t['rss_under_200_mb']}"
            )
    print("\n".join(out))


# ----------------------------------------------------------------------------- main


def free_mb(path):
    usage = shutil.disk_usage(path)
    return usage.free // MIB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size-mb",
        type=int,
        action="append",
        help="data size in MiB (dump and tree); repeat for several (default 500)",
    )
    parser.add_argument("--runs", type=int, default=3, help="rounds per size, raw and module interleaved (default 3)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="pg_restore -j, for the raw tool and the module (default 2)"
    )
    parser.add_argument("--kinds", default="postgres,files", help="comma-separated: postgres, files (default both)")
    parser.add_argument(
        "--json", nargs="?", const=str(DEFAULT_JSON), help=f"write the results as JSON (default path {DEFAULT_JSON})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the ansible-runner directory and its job events")
    parser.add_argument("--report", metavar="PATH", help="print the table of a results file again (runs nothing)")
    args = parser.parse_args(argv)
    if args.report:
        results = json.loads(Path(args.report).read_text(encoding="utf-8"))
        for size in results["sizes"]:
            size["summary"] = summarize_size(size["data"], size["raw"])
        print_report(results)
        return
    sizes = args.size_mb or [500]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not os.access(TIME_BIN, os.X_OK):
        sys.exit(f"{TIME_BIN} is missing (apt-get install time): it measures the processes' peak memory")
    # DB (~1.8x the dump) x target, staging, safety, raw copy; trees: source, target, staging, every round's raw and
    # safety copies (kept until the end of the size); the artifacts
    need = max(sizes) * 20
    if free_mb("/tmp") < need:
        sys.exit(f"/tmp has {free_mb('/tmp')} MiB free; this needs about {need} MiB")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    install_signal_handlers()
    from ansible_collections.mttr.recovery.tests.unit.plugins.module_utils.backup_fixtures import PostgresServer

    results = {
        "benchmark": "backup_restore: restore of a database dump and a file tree versus the raw tools",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_facts(),
        "runs": args.runs,
        "kinds": kinds,
        "disk_free_mb_start": free_mb("/tmp"),
        "sizes": [],
    }
    workdir = Path(tempfile.mkdtemp(prefix="mttr-bench-restore-", dir="/tmp"))
    workdir.chmod(0o755)
    server = None
    try:
        server = PostgresServer() if "postgres" in kinds else None
        if server:
            log(f"PostgreSQL 15 on 127.0.0.1:{server.port} (fsync=off, the test fixture's settings)")
        runner = Runner(workdir, keep=args.keep)
        runner.run("ping.yml", PING_TASK)  # warm-up
        for size_mb in sizes:
            root = workdir / f"size-{size_mb}"
            root.mkdir()
            bench = SizeBench(root, runner, server, size_mb, args.jobs, kinds)
            try:
                bench.setup()
                bench.rounds(args.runs)
            finally:
                bench.teardown()
            for runs in bench.raw.values():
                for run in runs if isinstance(runs, list) else []:
                    run.pop("res", None)
            entry = {"data": bench.data, "raw": bench.raw}
            entry["summary"] = summarize_size(bench.data, bench.raw)
            results["sizes"].append(entry)
    finally:
        if server:
            server.stop()
        if args.keep:
            log(f"kept {workdir / 'runner'}")
            for name in os.listdir(workdir):
                if name != "runner":
                    shutil.rmtree(workdir / name, ignore_errors=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["loadavg_end"] = loadavg()
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
