"""The failover benchmark's figures: per variant, medians [min-max] over the runs, the modules' timings and
the task timeline; the baselines; and the table."""

from __future__ import annotations

import json
import sys

from ansible_collections.mttr.recovery.bench.common import fmt_spread, median, spread

TARGET_FIRST_WRITE_S = 3.0
TARGET_VALIDATED_S = 5.0


def summarize(runs, base_runs):
    summary = {}
    variants = []
    for run in runs:
        if run["variant"] not in variants:
            variants.append(run["variant"])
    for variant in variants:
        mine = [run for run in runs if run["variant"] == variant and run["rc"] == 0]
        entry = {
            "runs_ok": len(mine),
            "runs_failed": sum(1 for run in runs if run["variant"] == variant and run["rc"] != 0),
            "first_write_s": spread([run["first_write_s"] for run in mine]),
            "validated_s": spread([run.get("validated_s") for run in mine]),
            "playbook_s": spread([run["playbook_s"] for run in mine]),
            "first_write_ports": sorted({run["writes"]["first_write_port"] for run in mine}),
            "writes_on_old_primary_after_break": sum(
                run["writes"]["writes_on_old_primary_after_break"] for run in mine
            ),
            "promote_request_to_ready_s": spread([run["pg2_log"]["request_to_ready_s"] for run in mine]),
            "promote_request_s": spread([run["pg2_log"]["promote_request_s"] for run in mine]),
            "loadavg_1m": spread([run["loadavg_1m"] for run in mine]),
        }
        if variant.startswith("raw"):
            for step in mine[0]["step_durations"] if mine else []:
                entry[f"step {step}"] = spread([run["step_durations"][step] for run in mine])
        else:
            timings = {}
            for run in mine:
                fo = (run.get("modules", {}).get("failover") or {}).get("timings") or {}
                for key, value in fo.items():
                    timings.setdefault(f"failover.{key}", []).append(value)
                for item in run.get("modules", {}).get("haproxy") or []:
                    for key, value in (item.get("timings") or {}).items():
                        timings.setdefault(f"haproxy.{key}", []).append(value)
                val = run.get("modules", {}).get("validate") or {}
                if val.get("elapsed_s") is not None:
                    timings.setdefault("validate.elapsed_s", []).append(val["elapsed_s"])
                probe = run.get("modules", {}).get("probe") or {}
                if probe.get("elapsed_s") is not None:
                    timings.setdefault("probe.elapsed_s", []).append(probe["elapsed_s"])
            entry["module_timings"] = {key: spread(values) for key, values in timings.items()}
            for mark in ("playbook_on_start_s", "playbook_on_stats_s"):
                if any(mark in run for run in mine):
                    entry[mark] = spread([run.get(mark) for run in mine])
            names = []
            for run in mine:
                for task in run.get("tasks", []):
                    if task["task"] not in names:
                        names.append(task["task"])
            timeline = []
            for name in names:
                rows = [task for run in mine for task in run.get("tasks", []) if task["task"] == name]
                timeline.append(
                    {
                        "task": name,
                        "start_s": median([row.get("start_s") for row in rows]),
                        "end_s": median([row.get("end_s") or row.get("first_result_s") for row in rows]),
                        "duration_s": median([row.get("duration_s") for row in rows]),
                    }
                )
            entry["task_timeline_medians"] = timeline
        summary[variant] = entry
    base = {}
    for name in base_runs[0] if base_runs else []:
        base[name] = spread([run[name] for run in base_runs if name in run])
    return summary, base


def print_report(results):
    out = sys.stdout
    summary = results["summary"]
    print(f"\nmachine: {json.dumps(results['machine'])}", file=out)
    print(
        f"\nfrom the start of the failover (s), median [min-max]; targets: first write <= {TARGET_FIRST_WRITE_S}, "
        f"validated <= {TARGET_VALIDATED_S}",
        file=out,
    )
    heads = ("first write", "validated", "process end", "promote req->ready")
    print(f"{'variant':16} {'n':>2} " + " ".join(f"{head:>20}" for head in heads), file=out)
    for variant, entry in summary.items():
        print(
            f"{variant:16} {entry['runs_ok']:>2} "
            + " ".join(
                f"{fmt_spread(entry[key]):>20}"
                for key in ("first_write_s", "validated_s", "playbook_s", "promote_request_to_ready_s")
            ),
            file=out,
        )
    for variant, entry in summary.items():
        print(f"\n{variant}:", file=out)
        for key, value in entry.items():
            if key.startswith("step ") or key in ("playbook_on_start_s", "playbook_on_stats_s", "promote_request_s"):
                print(f"  {key:40} {fmt_spread(value, 3)}", file=out)
        for key, value in (entry.get("module_timings") or {}).items():
            print(f"  module {key:33} {fmt_spread(value, 3)}", file=out)
        for row in entry.get("task_timeline_medians") or []:
            print(
                f"  task {row['task'][:52]:52} start {row['start_s']}  end {row['end_s']}  worker {row['duration_s']}",
                file=out,
            )
    if results.get("baselines"):
        print("\nbaselines (s), median [min-max]:", file=out)
        for name, value in results["baselines"].items():
            print(f"  {name:45} {fmt_spread(value, 3)}", file=out)
