"""The health_check benchmark's figures: the summary of a run's raw measurements, and its table."""

from __future__ import annotations

from ansible_collections.mttr.recovery.bench.common import median, spread

TARGET_S = 2.0
TARGET_RATIO = 50.0
TARGET_MB = 200.0


def summarize(raw, args):
    count = args.count
    summary = {"health_check": {}}
    for concurrency in args.concurrency:
        runs = [r for r in raw["health_check"] if r["concurrency"] == concurrency]
        mem = [r for r in raw["health_check_memory"] if r["concurrency"] == concurrency]
        engine = [r for r in raw["engine"] if r["concurrency"] == concurrency]
        probing = [r["module_elapsed_s"] for r in runs]
        summary["health_check"][str(concurrency)] = {
            "task_s": spread([r["task_s"] for r in runs]),
            "playbook_s": spread([r["playbook_s"] for r in runs]),
            "module_probing_s": spread(probing),
            "server_cpu_s": spread([r["server_cpu_s"] for r in runs]),
            "server_busy_fraction_of_probing": median(
                [r["server_cpu_s"] / r["module_elapsed_s"] for r in runs if r["module_elapsed_s"]]
            ),
            "module_process_wall_s": spread([r["module_process"]["elapsed_s"] for r in mem]),
            "module_process_maxrss_mb": spread([r["module_process"]["maxrss_kb"] / 1024 for r in mem]),
            "module_process_cpu_s": spread([r["module_process"]["user_s"] + r["module_process"]["sys_s"] for r in mem]),
            # The same task in the runs under /usr/bin/time, and in each of them what the module process did
            # not account for: the controller's share (templating the arguments, building and copying AnsiballZ,
            # the shell commands around it, reading the result).
            "task_s_under_time": spread([r["task_s"] for r in mem]),
            "controller_side_s": spread([r["task_s"] - r["module_process"]["elapsed_s"] for r in mem]),
            "engine_probe_s": spread([r["probe_s"] for r in engine]),
            "engine_maxrss_mb": spread([r["maxrss_kb"] / 1024 for r in engine]),
            "engine_maxrss_after_imports_mb": median([r["maxrss_after_imports_kb"] / 1024 for r in engine]),
        }
    summary["engine_sequential_probe_s"] = spread([r["probe_s"] for r in raw.get("engine_sequential", [])])
    summary["noop_playbook_s"] = spread([r["playbook_s"] for r in raw["noop"]])
    summary["ping_task_s"] = spread([r["task_s"] for r in raw["ping"]])
    summary["ping_playbook_s"] = spread([r["playbook_s"] for r in raw["ping"]])
    summary["ping_module_process_maxrss_mb"] = median(
        [r["module_process"]["maxrss_kb"] / 1024 for r in raw["ping_memory"]]
    )
    for hc in summary["health_check"].values():
        hc["playbook_minus_noop_s"] = round(hc["playbook_s"]["median"] - summary["noop_playbook_s"]["median"], 4)

    uri = raw.get("uri")
    if uri:
        per_item = uri["task_s"] / uri["items"]
        extrapolated = uri["items"] != count
        summary["uri"] = {
            "items_run": uri["items"],
            "task_s_measured": uri["task_s"],
            "playbook_s_measured": uri["playbook_s"],
            "per_item_s": round(per_item, 4),
            "task_s_for_count": round(uri["task_s"] if not extrapolated else per_item * count, 2),
            "extrapolated": extrapolated,
            "note": f"extrapolated linearly from {uri['items']} items" if extrapolated else "measured in full",
        }
        default = str(args.concurrency[0])
        best = min(summary["health_check"], key=lambda c: summary["health_check"][c]["task_s"]["median"])
        ratios = {}
        for label, concurrency in (("first_concurrency", default), ("fastest_concurrency", best)):
            hc = summary["health_check"][concurrency]
            ratios[label] = {
                "concurrency": int(concurrency),
                "task_ratio": round(summary["uri"]["task_s_for_count"] / hc["task_s"]["median"], 1),
                "extrapolated": extrapolated,
            }
        summary["ratio_uri_over_health_check"] = ratios
    first = summary["health_check"][str(args.concurrency[0])]
    summary["targets"] = {
        "under_2_s_task": first["task_s"]["median"] < TARGET_S,
        "under_200_mb": (first["module_process_maxrss_mb"] or {"max": first["engine_maxrss_mb"]["max"]})["max"]
        < TARGET_MB,
        "at_least_50x": (
            summary["ratio_uri_over_health_check"]["first_concurrency"]["task_ratio"] >= TARGET_RATIO if uri else None
        ),
        "concurrency": args.concurrency[0],
    }
    return summary


def fmt(value, unit="s", digits=3):
    if value is None:
        return "-"
    return f"{value:.{digits}f} {unit}"


def fmt_spread(stats, unit="s", digits=3):
    if not stats:
        return "-"
    return f"{stats['median']:.{digits}f} [{stats['min']:.2f}-{stats['max']:.2f}]" + (f" {unit}" if unit != "s" else "")


def print_report(results):
    s = results["summary"]
    m = results["machine"]
    cap = results["server"]["capacity"]
    out = [
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}, ansible-core {m['ansible_core']}, "
        f"ansible-runner {m['ansible_runner']}; load average {m['loadavg_start']} -> {m['loadavg_end']}",
        f"server: {results['server']['kind']}, {results['server'].get('delay_ms', 0):g} ms delay; "
        f"alone: {cap['count']} requests in {cap['wall_s']:.3f} s "
        f"({cap['requests_per_s']} req/s to an asyncio client), {cap['server_cpu_ms_per_request']:.3f} ms CPU each",
        f"{results['count']} http probes; {results['repeats']} runs each; seconds, median [min-max]",
        "",
    ]
    columns = list(s["health_check"])
    rows = [
        ("health_check task (runner event)", lambda hc: fmt_spread(hc["task_s"])),
        ("  probing in module (elapsed_s)", lambda hc: fmt_spread(hc["module_probing_s"])),
        ("playbook wall", lambda hc: fmt_spread(hc["playbook_s"])),
        ("playbook - noop playbook", lambda hc: fmt(hc["playbook_minus_noop_s"])),
        ("task, run under /usr/bin/time", lambda hc: fmt_spread(hc["task_s_under_time"])),
        ("  module process wall (time %e)", lambda hc: fmt_spread(hc["module_process_wall_s"])),
        ("  module process CPU user+sys", lambda hc: fmt_spread(hc["module_process_cpu_s"])),
        ("  controller side (task - process)", lambda hc: fmt_spread(hc["controller_side_s"])),
        ("  module process peak RSS (max)", lambda hc: fmt((hc["module_process_maxrss_mb"] or {}).get("max"), "MB", 1)),
        ("engine alone: probing", lambda hc: fmt_spread(hc["engine_probe_s"])),
        ("engine alone: peak RSS (max)", lambda hc: fmt(hc["engine_maxrss_mb"]["max"], "MB", 1)),
        ("server CPU / probing time", lambda hc: f"{hc['server_busy_fraction_of_probing']:.0%}"),
    ]
    out.append(f"{'concurrency':<34}" + "".join(f"{c:>24}" for c in columns))
    for label, cell in rows:
        out.append(f"{label:<34}" + "".join(f"{cell(s['health_check'][c]):>24}" for c in columns))
    out += [
        "",
        f"noop playbook: {fmt_spread(s['noop_playbook_s'])} s; ping task: {fmt_spread(s['ping_task_s'])} s, "
        f"its module process peak RSS {fmt(s['ping_module_process_maxrss_mb'], 'MB', 1)}",
        f"engine alone at concurrency 1 (one probe at a time): {fmt_spread(s.get('engine_sequential_probe_s'))} s",
    ]
    if "uri" in s:
        uri = s["uri"]
        out.append(
            f"uri loop: {uri['items_run']} items: task {uri['task_s_measured']:.1f} s, playbook "
            f"{uri['playbook_s_measured']:.1f} s, {uri['per_item_s']:.3f} s per item; for {results['count']} items: "
            f"{uri['task_s_for_count']:.1f} s ({uri['note']})"
        )
        ratios = s["ratio_uri_over_health_check"]
        if ratios["fastest_concurrency"]["concurrency"] == ratios["first_concurrency"]["concurrency"]:
            ratios = {"first_concurrency": ratios["first_concurrency"]}
        for label, ratio in ratios.items():
            tag = " (EXTRAPOLATED uri figure)" if ratio["extrapolated"] else ""
            which = label.split("_", maxsplit=1)[0]
            out.append(f"ratio uri loop / health_check task, concurrency {ratio['concurrency']} ({which}): ")
            out[-1] += f"{ratio['task_ratio']}x{tag}"
    else:
        out.append("uri loop: skipped (--uri-count 0)")
    t = s["targets"]
    out.append(
        f"targets at concurrency {t['concurrency']}: task < {TARGET_S:.0f} s: {t['under_2_s_task']}; "
        f"peak < {TARGET_MB:.0f} MB: {t['under_200_mb']}; >= {TARGET_RATIO:.0f}x: {t['at_least_50x']}"
    )
    print("\n".join(out))
