"""One measured failover of the failover benchmark: a fresh lab, the writer, the break, one variant's
failover, then the figures from t0 (the moment the failover starts, right after the break returned)."""

from __future__ import annotations

import time

from ansible_collections.mttr.recovery.bench.common import loadavg, log
from ansible_collections.mttr.recovery.bench.failover.drivers import BENCH_PLAYBOOKS, run_cli, run_raw, run_runner
from ansible_collections.mttr.recovery.bench.failover.lab import BenchLab
from ansible_collections.mttr.recovery.bench.failover.timeline import (
    TASK_VALIDATE,
    cli_module_timings,
    cli_timeline,
    rel,
    runner_results,
    runner_timeline,
)
from ansible_collections.mttr.recovery.bench.failover.writer import Writer, analyse_writes

# raw-late*: started this long after the break (the standby is then in its WAL retry cycle, as when the
# playbook reaches the promotion)
RAW_LATE_DELAY_S = 3.0


def failover_run(variant, port_base, workdir, ident, standby_retry_interval=None):
    """A fresh lab, the writer, the break, one failover; the lab is removed before returning."""
    lab = BenchLab(port_base)
    try:
        lab.up()
        if standby_retry_interval:
            lab.set_standby_retry_interval(standby_retry_interval)
        writer = Writer(lab.writer_config())
        try:
            writer.wait_ready()
            load = loadavg()[0]
            break_start = time.time()
            detail = lab.break_primary()
            break_end = time.time()
            driver, strategy = variant.split("-", 1) if "-" in variant else (variant, None)
            events = lines = None
            if driver == "runner":
                result, events = run_runner(lab, strategy, workdir / ident, ident)
            elif driver == "cli":
                result, lines = run_cli(lab, strategy)
            elif driver == "lean":
                result, lines = run_cli(lab, strategy, BENCH_PLAYBOOKS / "lean.yml", inventory="localhost,")
            else:
                if variant.startswith("raw-late"):
                    time.sleep(RAW_LATE_DELAY_S)
                result = run_raw(lab, reload_before_promote="-reload" in variant, kick=variant.endswith("-kick"))
            time.sleep(0.3)
            writes = writer.stop()
        except BaseException:
            writer.kill()
            raise
        t0 = result["t0"]
        old_port = lab.state["ports"]["pg1"]
        run = {
            "variant": variant,
            "loadavg_1m": load,
            "break_s": round(break_end - break_start, 4),
            "break_to_start_s": round(t0 - break_end, 4),
            "break_detail": detail,
            **{key: value for key, value in result.items() if key != "t0"},
            "writes": analyse_writes(writes, break_end, t0, old_port),
            "new_port": lab.state["ports"]["pg2"],
        }
        run["first_write_s"] = run["writes"]["first_write_s"]
        promote = lab.promote_log("pg2", break_start)
        run["pg2_log"] = {
            "promote_request_s": rel(promote["request"], t0),
            "ready_s": rel(promote["ready"], t0),
            "request_to_ready_s": rel(promote["ready"], promote["request"]),
            "request_to_redo_done_s": rel(promote["redo_done"], promote["request"]),
            "waits_after_request": promote["waits_after_request"],
        }
        if events is not None:
            tasks, marks = runner_timeline(events, t0)
            run["tasks"] = tasks
            run.update(marks)
            run["modules"] = runner_results(events)
            validate = [task for task in tasks if task["task"] == TASK_VALIDATE]
            run["validated_s"] = validate[0]["end_s"] if validate else None
        elif lines is not None:
            tasks = cli_timeline(lines, t0)
            run["tasks"] = tasks
            run["modules"] = {"failover": {"timings": cli_module_timings(lines)}}
            names = [task["task"] for task in tasks]
            # the validation ends when the next header (task or recap) is printed
            if TASK_VALIDATE in names and names.index(TASK_VALIDATE) + 1 < len(tasks):
                run["validated_s"] = tasks[names.index(TASK_VALIDATE) + 1]["start_s"]
        if run["rc"] != 0:
            log(f"{variant}: FAILED rc {run['rc']}\n{run.get('tail', '')}")
        return run
    finally:
        lab.down()
