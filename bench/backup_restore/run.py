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
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.backup_restore.data import MIB
from ansible_collections.mttr.recovery.bench.backup_restore.postgres import PostgresServer
from ansible_collections.mttr.recovery.bench.backup_restore.report import print_report, summarize_size
from ansible_collections.mttr.recovery.bench.backup_restore.rounds import PING_TASK, SizeBench
from ansible_collections.mttr.recovery.bench.common import (
    TIME_BIN,
    PlaybookRunner,
    interrupt_on_signals,
    loadavg,
    log,
    package_version,
    read_results,
    tool_version,
    venv_on_path,
    write_results,
)
from ansible_collections.mttr.recovery.bench.common import machine_facts as common_machine_facts
from mttr.lab.config import find_pg_bin

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "results.json"
PLAYBOOKS = HERE / "playbooks"


def machine_facts():
    return common_machine_facts(
        psycopg=package_version("psycopg"),
        pg_restore=tool_version([Path(find_pg_bin()) / "pg_restore", "--version"]),
        tar=tool_version(["tar", "--version"]),
        gzip=tool_version(["gzip", "--version"]),
    )


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
        results = read_results(args.report)
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
    venv_on_path()
    interrupt_on_signals()

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
            log(f"PostgreSQL ({server.pg_bin}) on 127.0.0.1:{server.port}, fsync=off")
        runner = PlaybookRunner(workdir / "runner", PLAYBOOKS, all_under_time=True)
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
        write_results(args.json, results)


if __name__ == "__main__":
    main()
