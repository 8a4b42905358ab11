"""``mttr recover`` against the lab: each scenario broken and recovered by the one command, proven from the
service itself (HTTP through HAProxy, the database, the release link) and from the incident's timeline; a
failed validation undone and escalated; two runs at once; a killed run resumed; a check-mode preview that
changes nothing; two failing services recovered in dependency order."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import MTTR, VENV_BIN, run_mttr, run_playbook

pytestmark = pytest.mark.integration


def recover(lab, *args, timeout=300):
    return run_mttr("recover", "--service", "orders", *args, home=lab.home, timeout=timeout)


def health(lab):
    url = lab.lab.cfg.state["app"]["public_url"] + "/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return None, None


def store(lab):
    from ansible_collections.mttr.recovery.plugins.module_utils.incident_store import IncidentStore

    return IncidentStore(str(lab.home / "incidents.sqlite"))


def incidents(lab):
    with store(lab) as opened:
        return opened.list()


def timeline(lab, incident_id):
    with store(lab) as opened:
        return opened.timeline(incident_id)


def steps(entries, step=None):
    return [
        (e["action"], e["result"]) for e in entries if e["kind"] == "step" and (step is None or e["action"] == step)
    ]


def incident_of(result):
    for line in (result.stdout + result.stderr).splitlines():
        for word in line.replace("(", " ").split():
            if word.startswith("INC-"):
                return word.rstrip(":,)")
    raise AssertionError(result.stdout + result.stderr)


def current_release(lab):
    return os.path.basename(os.readlink(lab.lab.cfg.state["app"]["current"]))


def query(lab, sql, port_key="lb_db"):
    state = lab.lab.cfg.state
    import psycopg

    with psycopg.connect(
        host="127.0.0.1",
        port=state["ports"][port_key],
        dbname=state["db"]["name"],
        user=state["db"]["superuser"],
        password=state["db"]["superuser_password"],
        connect_timeout=5,
        autocommit=True,
    ) as conn:
        return conn.execute(sql).fetchone()


def assert_recovered(lab, result, step_id):
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    incident_id = incident_of(result)
    status, body = health(lab)
    assert status == 200 and body["status"] == "ok", (status, body, out)
    record = next(i for i in incidents(lab) if i["id"] == incident_id)
    assert record["status"] == "resolved", record
    entries = timeline(lab, incident_id)
    assert [e for e in entries if e["kind"] == "plan"], "triage recorded no plan"
    assert steps(entries, step_id) == [(step_id, "started"), (step_id, "completed")], steps(entries)
    assert steps(entries, "validate") == [("validate", "completed")], steps(entries)
    assert (lab.home / "reviews" / f"{incident_id}.md").exists()
    return incident_id, entries


def test_each_scenario_is_recovered_by_mttr_recover_alone(fresh_lab, tmp_path):
    backup = run_playbook(tmp_path / "backup", fresh_lab.home, "mttr.recovery.backup")
    assert backup.status == "successful", backup.stdout.read()

    fresh_lab.mttr("break", "app-crash")
    time.sleep(2.5)
    assert_recovered(fresh_lab, recover(fresh_lab), "orders:restart")
    assert fresh_lab.lab.app.tracked.pid() is not None

    fresh_lab.mttr("break", "bad-release")
    assert current_release(fresh_lab) == "1.0.1"
    assert_recovered(fresh_lab, recover(fresh_lab), "orders:rollback")
    assert current_release(fresh_lab) == "1.0.0"
    assert health(fresh_lab)[1]["version"] == "1.0.0"

    fresh_lab.mttr("break", "primary-down")
    time.sleep(2.5)
    assert_recovered(fresh_lab, recover(fresh_lab), "orders-db:failover")
    # writes through HAProxy land on the promoted standby
    assert query(fresh_lab, "SELECT pg_is_in_recovery()") == (False,)
    assert query(fresh_lab, "SELECT inet_server_port()")[0] == fresh_lab.lab.cfg.state["ports"]["pg2"]
    written = query(fresh_lab, "INSERT INTO orders (customer, amount_cents) VALUES ('after-failover', 1) RETURNING id")
    assert query(fresh_lab, f"SELECT customer FROM orders WHERE id = {written[0]}") == ("after-failover",)

    fresh_lab.mttr("break", "data-loss")
    assert_recovered(fresh_lab, recover(fresh_lab), "orders-db:restore")
    # the backup's 1000 orders are back on the live primary (the row written after the backup is not)
    assert query(fresh_lab, "SELECT count(*) FROM orders") == (1000,)


def test_failed_validation_undoes_the_rollback_and_escalates(fresh_lab):
    fresh_lab.mttr("break", "bad-release")
    before = current_release(fresh_lab)
    impossible = [
        {
            "name": "orders answers 299",
            "kind": "http",
            "url": fresh_lab.lab.cfg.state["app"]["public_url"] + "/health",
            "status": [299],
        }
    ]
    result = recover(
        fresh_lab, "-e", "mttr_validate_probes=" + json.dumps(impossible), "-e", "mttr_recover_validate_deadline=2"
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "escalated" in result.stderr, out
    incident_id = incident_of(result)
    entries = timeline(fresh_lab, incident_id)
    assert steps(entries, "orders:rollback") == [
        ("orders:rollback", "started"),
        ("orders:rollback", "completed"),
        ("orders:rollback", "undone"),
    ], steps(entries)
    assert steps(entries, "validate") == [("validate", "failed")]
    # the release is back as it was before the recovery: the rollback was undone, not left half-way
    assert current_release(fresh_lab) == before == "1.0.1"
    record = next(i for i in incidents(fresh_lab) if i["id"] == incident_id)
    assert record["status"] == "escalated" and record["escalated_at"], record


def test_two_recovers_of_one_service_at_once_one_runs(fresh_lab):
    fresh_lab.mttr("break", "app-crash")
    time.sleep(2.5)
    env = dict(os.environ, MTTR_HOME=str(fresh_lab.home), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    command = [MTTR, "recover", "--service", "orders"]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _run in "ab"
    ]
    results = [(*run.communicate(timeout=300), run.returncode) for run in runs]
    codes = sorted(code for _out, _err, code in results)
    assert codes == [0, 1], results
    _out, err, _code = next(r for r in results if r[2] == 1)
    winner = incident_of(subprocess.CompletedProcess([], 0, next(r for r in results if r[2] == 0)[0], ""))
    assert winner in err and "orders" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert len(incidents(fresh_lab)) == 1


def lab_digest(lab):
    state = lab.lab.cfg.state
    from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime

    runtime = HAProxyRuntime(state["lb"]["admin_socket"])
    servers = sorted(
        (row["be_name"], row["srv_name"], row["srv_op_state"], row["srv_admin_state"])
        for row in runtime.servers_state()
    )
    rows = query(lab, "SELECT count(*), md5(string_agg(id::text || customer, ',' ORDER BY id)) FROM orders")
    releases = sorted(os.listdir(state["app"]["releases"]))
    return hashlib.sha256(json.dumps([servers, rows, releases, current_release(lab)]).encode()).hexdigest()


def test_check_previews_and_changes_nothing(fresh_lab):
    fresh_lab.mttr("break", "bad-release")
    time.sleep(2.5)
    before = lab_digest(fresh_lab)
    result = recover(fresh_lab, "--check")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "recovery preview" in out and "rollback" in out and "bad-release" in out, out
    assert lab_digest(fresh_lab) == before
    assert incidents(fresh_lab) == [], "a preview opened an incident"


def test_killed_run_resumes_without_repeating_its_completed_step(fresh_lab):
    fresh_lab.mttr("break", "bad-release")
    env = dict(os.environ, MTTR_HOME=str(fresh_lab.home), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    run = subprocess.Popen(
        [MTTR, "recover", "--service", "orders"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    incident_id = None
    while time.monotonic() < deadline:
        found = incidents(fresh_lab)
        if found and ("orders:rollback", "completed") in steps(timeline(fresh_lab, found[0]["id"])):
            incident_id = found[0]["id"]
            break
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert incident_id, "the rollback step never completed"
    assert current_release(fresh_lab) == "1.0.0"
    record = next(i for i in incidents(fresh_lab) if i["id"] == incident_id)
    assert record["status"] != "resolved", "killed too late: the run had finished"

    result = recover(fresh_lab, "--incident", incident_id)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    entries = timeline(fresh_lab, incident_id)
    # started and completed once: the resumed run did not roll back again (1.0.0 has no previous release,
    # so a second rollback would have failed)
    assert steps(entries, "orders:rollback") == [("orders:rollback", "started"), ("orders:rollback", "completed")]
    assert ("validate", "completed") in steps(entries)
    assert current_release(fresh_lab) == "1.0.0" and health(fresh_lab)[0] == 200
    assert next(i for i in incidents(fresh_lab) if i["id"] == incident_id)["status"] == "resolved"


def test_two_failing_services_recover_in_dependency_order(fresh_lab):
    fresh_lab.mttr("break", "app-crash")
    fresh_lab.mttr("break", "primary-down")
    time.sleep(2.5)
    result = recover(fresh_lab)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    entries = timeline(fresh_lab, incident_of(result))
    started = [action for action, outcome in steps(entries) if outcome == "started"]
    assert started == ["orders-db:failover", "orders:restart"], steps(entries)
    assert health(fresh_lab)[0] == 200


def run_processes(home):
    """Processes of a recovery run under this lab home: ansible and module processes, and the marker sleep."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if f"MTTR_HOME={home}" not in environ or "ANSIBLE_CALLBACKS_ENABLED=mttr.recovery.timeline" not in environ:
            continue
        line = " ".join(argv)
        if "ansible" in line or "AnsiballZ" in line or "sleep 417.25" in line:
            found.append((int(entry), line))
    return found


def test_ctrl_c_cancels_the_run_and_its_module_processes(fresh_lab):
    fresh_lab.mttr("break", "app-crash")
    time.sleep(2.5)
    # a validation that blocks in a child process of the module: a command probe sleeping far past the test
    blocker = [{"name": "blocks", "kind": "command", "argv": ["sleep", "417.25"], "timeout": 600}]
    env = dict(os.environ, MTTR_HOME=str(fresh_lab.home), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    run = subprocess.Popen(
        [MTTR, "recover", "--service", "orders", "-e", "mttr_validate_probes=" + json.dumps(blocker)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        "sleep 417.25" in line for _pid, line in run_processes(fresh_lab.home)
    ):
        time.sleep(0.1)
    assert any("sleep 417.25" in line for _pid, line in run_processes(fresh_lab.home)), "validation never started"
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, out + err
    assert "resume with" in err, err
    left = run_processes(fresh_lab.home)
    assert left == [], left
    incident_id = incidents(fresh_lab)[0]["id"]
    entries = timeline(fresh_lab, incident_id)
    assert ("run", "cancelled") in steps(entries)
    record = incidents(fresh_lab)[0]
    assert record["status"] != "resolved"

    # resumable: the restart completed before the cancel and is not repeated
    result = recover(fresh_lab, "--incident", incident_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert steps(timeline(fresh_lab, incident_id), "orders:restart") == [
        ("orders:restart", "started"),
        ("orders:restart", "completed"),
    ]


def test_replace_through_mttr_recover_moves_the_traffic_to_a_new_instance(fresh_lab):
    fresh_lab.mttr("break", "app-crash")
    time.sleep(2.5)
    result = recover(fresh_lab, "--strategy", "replace")
    incident_id, _entries = assert_recovered(fresh_lab, result, "orders:replace")
    state = fresh_lab.lab.cfg.state
    from ansible_collections.mttr.recovery.plugins.module_utils.haproxy_runtime import HAProxyRuntime

    servers = HAProxyRuntime(state["lb"]["admin_socket"]).server_status(state["lb"]["app_backend"])
    assert "app1" not in servers and len(servers) == 1 and next(iter(servers.values())).startswith("UP"), servers
    assert health(fresh_lab)[1]["version"] == "1.0.0"
    assert incident_id


def test_the_playbook_alone_from_extra_vars_recovers_and_records(fresh_lab, tmp_path):
    # as an AWX job template runs it: ansible-runner, the playbook, extra vars only (no CLI, no incident given)
    from conftest import REPO

    fresh_lab.mttr("break", "app-crash")
    time.sleep(2.5)
    runner = run_playbook(
        tmp_path / "awx",
        fresh_lab.home,
        REPO / "playbooks" / "recover.yml",
        extravars={"mttr_service": "orders"},
        envvars={"ANSIBLE_CALLBACKS_ENABLED": "mttr.recovery.timeline"},
    )
    output = runner.stdout.read()
    assert runner.status == "successful", output
    assert "[WARNING]" not in output, output
    (record,) = incidents(fresh_lab)
    assert record["status"] == "resolved" and record["services"] == ["orders"], record
    entries = timeline(fresh_lab, record["id"])
    assert steps(entries, "orders:restart") == [("orders:restart", "started"), ("orders:restart", "completed")]
    # the timeline callback took the incident the playbook opened: the tasks after triage are on it
    tasks = [e["action"] for e in entries if e["kind"] == "task"]
    assert any(task.endswith("Start the component") for task in tasks), tasks
    assert "Probe every involved service until it validates" in tasks, tasks
    assert health(fresh_lab)[0] == 200


def test_status_updates_go_out_at_acknowledge_resolve_and_study(fresh_lab, tmp_path):
    from ansible_collections.mttr.recovery.tests.support.webhooks import Receiver

    receiver = Receiver(tmp_path / "posts.jsonl")
    try:
        fresh_lab.mttr("break", "app-crash")
        time.sleep(2.5)
        hooks = [{"name": "status", "url": receiver.url + "/hook", "kind": "json"}]
        result = recover(fresh_lab, "-e", "communicate_webhooks=" + json.dumps(hooks))
        incident_id, _entries = assert_recovered(fresh_lab, result, "orders:restart")
        posts = [post["body"] for post in receiver.received]
    finally:
        receiver.stop()
    assert [post["phase"] for post in posts] == ["acknowledge", "resolve", "study"], posts
    assert {post["incident"] for post in posts} == {incident_id}
    assert "Recovering: orders:restart" in posts[0]["text"], posts[0]
    assert f"{incident_id}.html" in posts[2]["text"], posts[2]
