"""The backup_restore benchmark's figures: the summary of one size's raw measurements, and the table."""

from __future__ import annotations

from ansible_collections.mttr.recovery.bench.backup_restore.data import MIB
from ansible_collections.mttr.recovery.bench.common import fmt_spread, median, spread

TARGET_RATIO = 1.1
TARGET_MB = 200.0


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
