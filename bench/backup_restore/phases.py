"""Where a ``files`` restore spends its time: the engine's parts against the raw tools, on one archive.

Builds a tree with the benchmark's generator (``data.py``) (or takes ``--archive``), archives it with the engine's own
``write_archive`` (gzip level 1, as the ``backup`` module does), then times, R times each, after ``sync``:

- ``sha256`` of the archive (hashlib, 1 MiB reads) and ``zlib`` decompression of it (in this process);
- ``gzip -dc archive > /dev/null`` and ``tar -xzf archive`` into an empty directory (GNU tar runs gzip
  as a second process: decompression and extraction overlap on two CPUs);
- ``tarfile`` reading every member's header and data without writing anything (decompression + parsing);
- ``extract_verified``: the engine's whole extract-while-hashing-and-verifying, into an empty directory;
- once, ``extract_verified`` under cProfile (the top functions by own time are printed).

    .venv/bin/python bench/backup_restore/phases.py [--size-mb 500] [--repeats 3] [--archive PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

from ansible_collections.mttr.recovery.bench.backup_restore.data import MIB, generate_tree
from ansible_collections.mttr.recovery.bench.common import loadavg, log
from ansible_collections.mttr.recovery.plugins.module_utils.backup_files import extract_verified, write_archive
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import HashingWriter


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def zlib_decompress(path):
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            total += len(decompressor.decompress(block))
    return total


def tarfile_read(path):
    count = 0
    with open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|gz") as tar:
        for member in tar:
            if member.isfile():
                extracted = tar.extractfile(member)
                while extracted.read(16 * 1024):
                    pass
            count += 1
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archive", help="an existing files.tar.gz (default: build one)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mttr-bench-restore-phases-", dir="/tmp"))
    try:
        if args.archive:
            archive = Path(args.archive)
        else:
            source = work / "source"
            source.mkdir()
            log(f"generating {args.size_mb} MiB tree...")
            generate_tree(source, args.size_mb)
            archive = work / "files.tar.gz"
            with open(archive, "wb") as handle:
                writer = HashingWriter(handle)
                write_archive(str(source), writer)
            shutil.rmtree(source)
        size = archive.stat().st_size
        artifact = {"name": archive.name, "size": size, "sha256": sha256_file(archive)}
        counter = [0]

        def fresh():
            counter[0] += 1
            path = work / f"out-{counter[0]}"
            path.mkdir()
            return path

        def engine():
            out = fresh()
            with open(archive, "rb") as handle:
                extract_verified(handle, artifact, "bench", str(out), "gzip")
            return out

        def tar_x():
            out = fresh()
            subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
            return out

        def gzip_dc():
            with open(os.devnull, "wb") as null:
                subprocess.run(["gzip", "-dc", str(archive)], stdout=null, check=True)

        parts = {
            "sha256 (hashlib)": lambda: sha256_file(archive),
            "zlib decompress (in process)": lambda: zlib_decompress(archive),
            "gzip -dc > /dev/null": gzip_dc,
            "tarfile r|gz read all members": lambda: tarfile_read(archive),
            "tar -xzf (raw tool)": tar_x,
            "extract_verified (engine)": engine,
        }
        figures = {name: [] for name in parts}
        loads = []
        outputs = []
        for number in range(args.repeats):
            for name, part in parts.items():
                subprocess.run(["sync"], check=True)
                loads.append(os.getloadavg()[0])
                started = time.perf_counter()
                out = part()
                figures[name].append(round(time.perf_counter() - started, 3))
                if isinstance(out, Path):
                    outputs.append(out)  # removed at the end: see rounds.py on ext4's recently deleted inodes
            log(f"round {number + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in figures.items()))
        print(f"archive {size / MIB:.0f} MiB; seconds, median [min-max] of {args.repeats}; load {loadavg()}")
        for name, values in figures.items():
            print(f"  {name:<34} {statistics.median(values):7.2f} [{min(values):.2f}-{max(values):.2f}]")
        profile = cProfile.Profile()
        out = fresh()
        with open(archive, "rb") as handle:
            profile.runcall(extract_verified, handle, artifact, "bench", str(out), "gzip")
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(18)
        print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:6000])
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {"archive_bytes": size, "repeats": args.repeats, "loadavg_1m": loads, "seconds": figures},
                    indent=1,
                )
                + "\n",
                encoding="utf-8",
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
