"""Failover benchmark: how fast does ``playbooks/failover.yml`` bring writes back after the primary dies?

Every run starts a fresh lab (``mttr lab up`` in a new home under /tmp), starts a WRITER process that
tries ``INSERT INTO orders ... RETURNING inet_server_port()`` through HAProxy's write endpoint
(127.0.0.1:N+10, database orders, the lab's superuser) every 20 ms, each attempt on a new connection
and without waiting for the previous one (an attempt can hang in HAProxy's connect retries while the
dead primary is not yet marked DOWN), waits for a first write on pg1, breaks the lab
(``mttr lab break primary-down``) and, as soon as that returns, starts the failover:

- ``runner-<strategy>``: ``ansible-playbook -i inventories/lab playbooks/failover.yml`` through
  ansible-runner; task timeline and module results from its job events;
- ``cli-<strategy>``: the same command as a plain subprocess (default stdout callback), each output
  line timestamped as it arrives; module timings parsed from the last task's report;
- ``raw``: the same operations as a plain Python script in a process of its own (this file with
  ``--raw-failover``): ``standby.signal`` in the old data directory, ``SELECT pg_promote()`` on pg2,
  HAProxy runtime API ``set server db_primary/pg2 state ready; set server db_primary/pg1 state maint``,
  then its own first write through HAProxy.

``<strategy>`` is ``linear`` (ansible-core's default) or ``mitogen`` (``mitogen_linear`` from the
mitogen package, when installed: ``ANSIBLE_STRATEGY_PLUGINS`` + ``ANSIBLE_STRATEGY``).

Measured from the moment the failover starts (t0: just before ansible-runner / the subprocess is
started, right after the break returned):

- ``first_write_s``: the writer's first INSERT committed after the break (its end time), and the
  server that took it (``inet_server_port()``);
- ``validated_s``: the end of the "Validate the service through the load balancer" task;
- ``playbook_s``: ansible-playbook finished (rc 0);
- the module-reported timings (fence_s, promote_s, promote_to_first_write_s, total_s; switch_s,
  until_up_s; the validation's elapsed_s) and, from pg2's log, promote request -> ready.

Rounds are interleaved (every variant once per round, each on its own fresh lab), so the machine's
load hits all variants alike. Each round also runs baselines on a healthy lab: Python start,
``ansible-playbook --version``, a no-op playbook against the same inventory (runner and CLI, linear
and mitogen, default and minimal stdout callback), 10 debug tasks, 5 ping tasks and 3 debug tasks
templating the role's expressions (lab lookup, hostvars).

    .venv/bin/python bench/failover/run.py [--runs N] [--strategy linear|mitogen|both]
        [--driver runner|cli|both] [--no-raw] [--no-baseline] [--port-base N] [--json [PATH]] [--keep]
    .venv/bin/python bench/failover/run.py --report bench/failover/results/results.json

Every lab it starts is taken down (``down --purge``) and its home removed, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ansible_collections.mttr.recovery.bench.common import loadavg, log, median, spread
from ansible_collections.mttr.recovery.bench.common import machine_facts as common_machine_facts

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV_BIN = Path(sys.executable).parent
MTTR = VENV_BIN / "mttr"
ANSIBLE_PLAYBOOK = VENV_BIN / "ansible-playbook"
PLAYBOOK = REPO / "playbooks" / "failover.yml"
INVENTORY = REPO / "inventories" / "lab"
DEFAULT_JSON = HERE / "results" / "results.json"

TARGET_FIRST_WRITE_S = 3.0
TARGET_VALIDATED_S = 5.0
WRITE_INTERVAL_S = 0.02
WRITE_INTERVAL_AFTER_S = 0.2
WRITE_CONNECT_TIMEOUT_S = 2
INSERT_SQL = "INSERT INTO orders (customer, amount_cents) VALUES (%s, 1) RETURNING inet_server_port()"

TASK_PROBE = "Probe every database node for its role and lag"
TASK_FAILOVER = "Fence the old primary, promote the standby, prove a write"  # the lean prototypes' task
TASK_ONE_CALL = "Drain, fence, promote, prove a write and switch the load balancers"  # the role's, since the one-call
TASK_LB = "Send write traffic to the new primary"
TASK_VALIDATE = "Validate the service through the load balancer"
TASK_REPORT = "Report the failover"
RAW_LATE_DELAY_S = 3.0

BASELINE_PLAYBOOKS = {
    "noop.yml": """\
- name: Baseline, no task runs anything
  hosts: db
  gather_facts: false
  tasks:
    - name: Noop
      ansible.builtin.meta: noop
""",
    "debug10.yml": "- name: Baseline, 10 debug tasks\n  hosts: db\n  gather_facts: false\n  tasks:\n"
    + "".join(
        f"    - name: Debug {i}\n      ansible.builtin.debug:\n        msg: x\n      run_once: true\n"
        for i in range(10)
    ),
    "ping5.yml": "- name: Baseline, 5 module runs\n  hosts: db\n  gather_facts: false\n  tasks:\n"
    + "".join(
        f"    - name: Ping {i}\n      ansible.builtin.ping:\n      delegate_to: localhost\n      run_once: true\n"
        for i in range(5)
    ),
    # The role's heavy templates (node probes, the failover task's hostvars, the validation probes),
    # rendered by debug tasks: what templating and the lab lookup cost without running a module.
    "template3.yml": """\
- name: Baseline, the role's templates in 3 debug tasks
  hosts: db
  gather_facts: false
  vars:
    probes: >-
      {{ ansible_play_hosts | map('extract', hostvars) | map(attribute='mttr_probes', default=[]) | flatten
         | map('combine', {'report_replication': true, 'retries': 0, 'timeout': 2}) }}
  tasks:
    - name: Node probes
      ansible.builtin.debug:
        msg: "{{ probes | length }}"
      run_once: true
    - name: Failover arguments
      ansible.builtin.debug:
        msg:
          old: [pg1, "{{ hostvars['pg1'].pg_host }}", "{{ hostvars['pg1'].pg_port }}", "{{ hostvars['pg1'].pg_data }}"]
          new: [pg2, "{{ hostvars['pg2'].pg_host }}", "{{ hostvars['pg2'].pg_port }}"]
          login: ["{{ hostvars['pg2'].pg_user }}", "{{ hostvars['pg2'].pg_password | length }}"]
          bin: ["{{ hostvars['pg2'].pg_bin }}", "{{ hostvars['pg1'].pg_os_user | default(omit) }}"]
      run_once: true
    - name: Validation probes
      ansible.builtin.debug:
        msg: >-
          {{ (((groups['app'] | default([])) | map('extract', hostvars) | map(attribute='mttr_probes', default=[])
              | flatten) + (probes | selectattr('labels.host', 'eq', 'pg2') | list)) | length }}
      run_once: true
""",
}

# A prototype of a leaner failover (bench only, not the collection's playbook): no role, no probe
# task, no set_fact/assert (the old and new nodes are given), the lab state read by the lookup once
# per task; the same three module calls (postgres failover, haproxy switch, validation). Its task names
# are the role's (TASK_FAILOVER, TASK_LB, TASK_VALIDATE, TASK_REPORT), which the timeline looks for.
LEAN_PLAYBOOK = """\
- name: Lean failover prototype, pg1 -> pg2
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    lab: "{{ lookup('mttr.recovery.lab') }}"
  tasks:
    - name: Fence the old primary, promote the standby, prove a write
      mttr.recovery.failover:
        provider: postgres
        old: {name: pg1, host: 127.0.0.1, port: "{{ lab.nodes.pg1.port }}", data_dir: "{{ lab.nodes.pg1.data }}"}
        new: {name: pg2, host: 127.0.0.1, port: "{{ lab.nodes.pg2.port }}"}
        login_user: "{{ lab.db.superuser }}"
        login_password: "{{ lab.db.superuser_password }}"
        pg_bin: "{{ lab.pg_bin }}"
        os_user: "{{ lab.run_as }}"
      register: failover_db
    - name: Send write traffic to the new primary
      mttr.recovery.failover:
        provider: haproxy
        admin_socket: "{{ lab.lb.admin_socket }}"
        backend: "{{ lab.lb.db_backend }}"
        old: {name: pg1}
        new: {name: pg2}
    - name: Validate the service through the load balancer
      mttr.recovery.health_check:
        probes:
          - {name: app via lb, kind: http, url: "{{ lab.app.public_url }}/health", json_path: status, json_value: ok}
          - {name: app direct, kind: http, url: "{{ lab.app.url }}/health", json_path: status, json_value: ok}
          - name: pg2
            kind: postgres
            host: 127.0.0.1
            port: "{{ lab.nodes.pg2.port }}"
            dbname: "{{ lab.db.name }}"
            user: "{{ lab.db.superuser }}"
            password: "{{ lab.db.superuser_password }}"
        wait_for: healthy
        deadline: 15
        interval: 0.2
        fail_on: down
    - name: Report the failover
      ansible.builtin.debug:
        msg: ["timings: {{ failover_db.timings }}"]
"""

# A prototype of the proposed one-call failover (bench only, written next to LEAN1_PLAYBOOK as
# library/mttr_bench_failover_one.py): the collection's own engines (PostgresFailover, HAProxySwitch)
# in ONE module call, and promote() without the reload that the engine does before pg_promote() when
# there is nothing to reset (see RESULTS.md: that reload costs a wal_retrieve_retry_interval).
BENCH_MODULE = """\
#!/usr/bin/python
from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mttr.recovery.plugins.module_utils.failover_common import FailoverError
from ansible_collections.mttr.recovery.plugins.module_utils.failover_haproxy import HAProxySwitch
from ansible_collections.mttr.recovery.plugins.module_utils.failover_postgres import PgNode, PostgresFailover

NODE = {"type": "dict", "required": True, "options": {
    "name": {"type": "str", "required": True},
    "host": {"type": "str", "default": "127.0.0.1"},
    "port": {"type": "int", "default": 5432},
    "data_dir": {"type": "path"},
}}


class Failover(PostgresFailover):
    def promote(self):
        with self.new.connect() as conn:
            source = conn.execute(
                "SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only'"
            ).fetchone()[0]
            if source != "default":
                conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
                conn.execute("SELECT pg_reload_conf()")
            ok = conn.execute("SELECT pg_promote(true, %s)", (self.promote_timeout,)).fetchone()[0]
        if not ok:
            raise FailoverError(f"{self.new.name} did not finish promotion within {self.promote_timeout} s")


def main():
    module = AnsibleModule(argument_spec={
        "old": NODE, "new": NODE,
        "login_user": {"type": "str"}, "login_password": {"type": "str", "no_log": True},
        "pg_bin": {"type": "path"}, "os_user": {"type": "str"},
        "admin_socket": {"type": "path", "required": True}, "backend": {"type": "str", "required": True},
    })
    params = module.params
    old, new = (
        PgNode(spec["name"], spec["host"], spec["port"], params["login_user"], params["login_password"],
               data_dir=spec.get("data_dir"))
        for spec in (params["old"], params["new"])
    )

    def run(argv, env):
        return module.run_command(argv, environ_update=env or {})

    try:
        db = Failover(old, new, run=run, pg_bin=params["pg_bin"], os_user=params["os_user"]).failover()
        lb = HAProxySwitch(params["admin_socket"], params["backend"], old.name, new.name).switch()
    except FailoverError as exc:
        module.fail_json(msg=str(exc))
    lb.pop("diff", None)
    module.exit_json(changed=True, timings=db["timings"], haproxy=lb, fence=db["fence"], msg=db["msg"])


if __name__ == "__main__":
    main()
"""

LEAN1_PLAYBOOK = """\
- name: One-call failover prototype, pg1 -> pg2
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    lab: "{{ lookup('mttr.recovery.lab') }}"
  tasks:
    - name: Fence the old primary, promote the standby, prove a write
      mttr_bench_failover_one:
        old: {name: pg1, host: 127.0.0.1, port: "{{ lab.nodes.pg1.port }}", data_dir: "{{ lab.nodes.pg1.data }}"}
        new: {name: pg2, host: 127.0.0.1, port: "{{ lab.nodes.pg2.port }}"}
        login_user: "{{ lab.db.superuser }}"
        login_password: "{{ lab.db.superuser_password }}"
        pg_bin: "{{ lab.pg_bin }}"
        os_user: "{{ lab.run_as }}"
        admin_socket: "{{ lab.lb.admin_socket }}"
        backend: "{{ lab.lb.db_backend }}"
      register: failover_db
""" + ("    - name: Validate" + LEAN_PLAYBOOK.split("    - name: Validate", 1)[1])

LABS = []  # every lab started and not yet removed, for the cleanup on exit


def rel(stamp, origin):
    return None if stamp is None or origin is None else round(stamp - origin, 4)


def parse_iso(text):
    stamp = datetime.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


def short_error(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "failed: " in text:
        text = text.rsplit("failed: ", 1)[1]
    return text[:90]


# ----------------------------------------------------------------------------- machine


def machine_facts():
    versions = {}
    for dist in ("psycopg", "mitogen"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    tools = {}
    for argv in (["haproxy", "-v"], [str(Path(lab_pg_bin()) / "postgres"), "--version"]):
        with contextlib.suppress(OSError):
            out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            tools[Path(argv[0]).name] = out.splitlines()[0] if out else None
    return common_machine_facts(date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), **versions, **tools)


def lab_pg_bin():
    for version in ("17", "16", "15", "14"):
        path = Path(f"/usr/lib/postgresql/{version}/bin")
        if (path / "postgres").exists():
            return str(path)
    return "/usr/lib/postgresql/15/bin"


def mitogen_strategy_dir():
    """The strategy plugins directory of an installed ansible_mitogen, or None."""
    try:
        import ansible_mitogen
    except ImportError:
        return None
    path = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return str(path) if (path / "mitogen_linear.py").exists() else None


# ----------------------------------------------------------------------------- lab


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_port_base(start):
    for base in range(start, 65000, 100):
        if all(port_free(base + offset) for offset in (1, 2, 10, 20, 30, 40)):
            return base
    raise RuntimeError(f"no free port range from {start}")


class Lab:
    """One lab in a fresh home under /tmp (mode 0755: PostgreSQL runs as user postgres)."""

    def __init__(self, port_base):
        self.port_base = port_base
        self.home = Path(tempfile.mkdtemp(dir="/tmp", prefix="mttr-bench-failover-"))
        self.home.chmod(0o755)
        self.state = None
        LABS.append(self)

    def mttr(self, *args, timeout=180):
        argv = [str(MTTR), "lab", "--home", str(self.home), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return proc.stdout

    def up(self):
        self.mttr("up", "--port-base", str(self.port_base))
        self.state = json.loads((self.home / "lab.json").read_text(encoding="utf-8"))
        return self

    def break_primary(self):
        return self.mttr("break", "primary-down").strip()

    def set_standby_retry_interval(self, value):
        """ALTER SYSTEM SET wal_retrieve_retry_interval on pg2 (the lab sets 1s; PostgreSQL's default is 5s)."""
        import psycopg

        db = self.state["db"]
        with psycopg.connect(
            host="127.0.0.1",
            port=self.state["ports"]["pg2"],
            dbname="postgres",
            user=db["superuser"],
            password=db["superuser_password"],
            autocommit=True,
        ) as conn:
            conn.execute(f"ALTER SYSTEM SET wal_retrieve_retry_interval = '{value}'")
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(1)

    @property
    def env(self):
        return {"MTTR_HOME": str(self.home)}

    def writer_config(self):
        return {
            "host": "127.0.0.1",
            "port": self.state["ports"]["lb_db"],
            "dbname": self.state["db"]["name"],
            "user": self.state["db"]["superuser"],
            "password": self.state["db"]["superuser_password"],
        }

    def promote_log(self, node, since):
        """Times of pg2's promote request and of 'ready to accept connections' after ``since`` (epoch)."""
        path = self.home / "log" / "pg" / f"{node}.log"
        found = {"request": None, "redo_done": None, "ready": None, "waits_after_request": 0}
        with contextlib.suppress(OSError), path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[\d+\] \w+:\s+(.*)", line)
                if not match:
                    continue
                stamp = (
                    datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f")
                    .replace(tzinfo=datetime.UTC)
                    .timestamp()
                )
                if stamp < since - 0.01:
                    continue
                text = match.group(2)
                if text.startswith("received promote request") and found["request"] is None:
                    found["request"] = stamp
                elif found["request"] is not None and found["redo_done"] is None:
                    if text.startswith("waiting for WAL to become available"):
                        found["waits_after_request"] += 1
                    elif text.startswith("redo done"):
                        found["redo_done"] = stamp
                if text.startswith("database system is ready to accept connections") and found["request"]:
                    found["ready"] = stamp
                    break
        return found

    def down(self):
        if self in LABS:
            LABS.remove(self)
        with contextlib.suppress(Exception):
            if (self.home / "lab.json").exists():
                self.mttr("down", "--purge", timeout=120)
        shutil.rmtree(self.home, ignore_errors=True)


def cleanup_labs():
    for lab in list(LABS):
        log(f"taking down the lab in {lab.home}")
        lab.down()


# ----------------------------------------------------------------------------- writer (its own process)


async def writer_loop(cfg):
    import psycopg

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_stdin():
        sys.stdin.readline()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_stdin, daemon=True).start()
    records = []
    inflight = set()
    first = {"port": None, "moved": False}

    async def attempt(seq):
        started = time.time()
        try:
            conn = await psycopg.AsyncConnection.connect(
                host=cfg["host"],
                port=cfg["port"],
                dbname=cfg["dbname"],
                user=cfg["user"],
                password=cfg["password"],
                connect_timeout=WRITE_CONNECT_TIMEOUT_S,
                autocommit=True,
            )
            try:
                cursor = await conn.execute(INSERT_SQL, (f"bench-failover-{seq}",))
                row = await cursor.fetchone()
            finally:
                await conn.close()
            port = int(row[0])
            records.append([started, time.time(), port, None])
            if first["port"] is None:
                first["port"] = port
                print("ready", flush=True)
            elif port != first["port"]:
                first["moved"] = True
        except Exception as exc:  # any failure is a data point: the write endpoint refused it
            records.append([started, time.time(), None, short_error(exc)])

    seq = 0
    next_at = time.monotonic()
    while not stop.is_set():
        if len(inflight) < cfg.get("max_inflight", 200):
            seq += 1
            task = asyncio.create_task(attempt(seq))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        next_at += WRITE_INTERVAL_AFTER_S if first["moved"] else WRITE_INTERVAL_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - time.monotonic()))
    if inflight:
        await asyncio.wait(inflight, timeout=WRITE_CONNECT_TIMEOUT_S + 1)
    print(json.dumps({"records": records, "attempts": seq}), flush=True)


def writer_main():
    cfg = json.loads(sys.stdin.readline())
    asyncio.run(writer_loop(cfg))


class Writer:
    """The writer process: started before the break, stopped after the failover; returns its records."""

    def __init__(self, cfg):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.proc.stdin.write(json.dumps(cfg) + "\n")
        self.proc.stdin.flush()

    def wait_ready(self, timeout=15):
        readable = select.select([self.proc.stdout], [], [], timeout)[0]
        if not readable or self.proc.stdout.readline().strip() != "ready":
            self.kill()
            raise RuntimeError("the writer made no write through HAProxy before the break")

    def stop(self):
        out = self.proc.communicate("stop\n", timeout=WRITE_CONNECT_TIMEOUT_S + 20)[0]
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()


def analyse_writes(data, break_end, t0, old_port):
    records = sorted(data["records"], key=lambda rec: rec[1])
    after = [rec for rec in records if rec[1] > break_end]
    successes = [rec for rec in after if rec[2] is not None]
    first = successes[0] if successes else None
    errors = {}
    for rec in after:
        if rec[2] is None and (first is None or rec[1] < first[1]):
            errors[rec[3]] = errors.get(rec[3], 0) + 1
    return {
        "attempts": data["attempts"],
        "first_write_s": rel(first[1], t0) if first else None,
        "first_write_attempt_started_s": rel(first[0], t0) if first else None,
        "first_write_port": first[2] if first else None,
        "first_write_on_old_primary": bool(first and first[2] == old_port),
        "writes_on_old_primary_after_break": sum(1 for rec in successes if rec[2] == old_port),
        "failures_after_first_write": sum(1 for rec in after if rec[2] is None and first and rec[0] > first[1]),
        "last_write_before_break_s": rel(
            max((rec[1] for rec in records if rec[2] and rec[1] <= break_end), default=None), t0
        ),
        "errors_before_first_write": dict(sorted(errors.items(), key=lambda item: -item[1])[:4]),
    }


# ----------------------------------------------------------------------------- raw failover (its own process)


def raw_failover_main():
    """The failover's operations in plain Python: print a JSON line of epoch timestamps per step."""
    marks = {"process_start": time.time()}
    cfg = json.loads(sys.stdin.readline())
    import psycopg

    marks["imports_done"] = time.time()
    signal_path = Path(cfg["old_data"]) / "standby.signal"
    signal_path.touch()
    if cfg.get("run_as"):
        shutil.chown(signal_path, cfg["run_as"], cfg["run_as"])
        signal_path.chmod(0o600)
    marks["standby_signal_written"] = time.time()
    with psycopg.connect(
        host="127.0.0.1",
        port=cfg["new_port"],
        dbname="postgres",
        user=cfg["user"],
        password=cfg["password"],
        autocommit=True,
        connect_timeout=3,
    ) as conn:
        marks["new_connected"] = time.time()
        if cfg.get("reload_before_promote"):
            # what PostgresFailover.promote() does first: lift a read-only setting, reload
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            conn.execute("SELECT pg_reload_conf()")
        kicks = 0
        if cfg.get("kick"):
            # Promote without waiting, poll every 10 ms, and while it is still in recovery wake the
            # startup process every 100 ms with a reload (its SIGHUP handler sets the recovery latch),
            # so a promotion noticed just before a wal_retrieve_retry_interval sleep is not held by it.
            promoted = conn.execute("SELECT pg_promote(false)").fetchone()[0]
            kicked = time.monotonic()
            while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                time.sleep(0.01)
                if time.monotonic() - kicked >= 0.1:
                    conn.execute("SELECT pg_reload_conf()")
                    kicked = time.monotonic()
                    kicks += 1
        else:
            promoted = conn.execute("SELECT pg_promote(true, 60)").fetchone()[0]
    marks["promoted"] = time.time()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(cfg["admin_socket"])
        backend = cfg["backend"]
        commands = f"set server {backend}/{cfg['new']} state ready; set server {backend}/{cfg['old']} state maint"
        sock.sendall(commands.encode() + b"\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    marks["haproxy_switched"] = time.time()
    port = None
    for attempt in range(200):
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=cfg["lb_port"],
                dbname=cfg["dbname"],
                user=cfg["user"],
                password=cfg["password"],
                autocommit=True,
                connect_timeout=2,
            ) as conn:
                port = conn.execute(INSERT_SQL, (f"bench-raw-{attempt}",)).fetchone()[0]
            break
        except psycopg.Error:
            time.sleep(0.01)
    marks["own_first_write"] = time.time()
    print(
        json.dumps(
            {"marks": marks, "promoted": promoted, "kicks": kicks, "haproxy": answer.decode().strip(), "port": port}
        ),
        flush=True,
    )


def run_raw(lab, reload_before_promote=False, kick=False):
    cfg = {
        "reload_before_promote": reload_before_promote,
        "kick": kick,
        "old_data": lab.state["nodes"]["pg1"]["data"],
        "run_as": lab.state.get("run_as"),
        "new_port": lab.state["ports"]["pg2"],
        "user": lab.state["db"]["superuser"],
        "password": lab.state["db"]["superuser_password"],
        "dbname": lab.state["db"]["name"],
        "admin_socket": lab.state["lb"]["admin_socket"],
        "backend": lab.state["lb"]["db_backend"],
        "old": "pg1",
        "new": "pg2",
        "lb_port": lab.state["ports"]["lb_db"],
    }
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--raw-failover"],
        input=json.dumps(cfg) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    t_end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"raw failover failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    marks = out["marks"]
    return {
        "t0": t0,
        "rc": 0,
        "playbook_s": rel(t_end, t0),
        "steps": {name: rel(stamp, t0) for name, stamp in marks.items()},
        "step_durations": {
            "python_start_and_imports": rel(marks["imports_done"], t0),
            "standby_signal": rel(marks["standby_signal_written"], marks["imports_done"]),
            "connect_new": rel(marks["new_connected"], marks["standby_signal_written"]),
            "pg_promote": rel(marks["promoted"], marks["new_connected"]),
            "haproxy_switch": rel(marks["haproxy_switched"], marks["promoted"]),
            "own_first_write": rel(marks["own_first_write"], marks["haproxy_switched"]),
        },
        "promoted": out["promoted"],
        "kicks": out["kicks"],
        "own_write_port": out["port"],
    }


# ----------------------------------------------------------------------------- playbooks


def playbook_env(lab, strategy, extra=None):
    env = dict(lab.env) if lab else {}
    env["ANSIBLE_NOCOLOR"] = "1"
    if strategy == "mitogen":
        env["ANSIBLE_STRATEGY_PLUGINS"] = mitogen_strategy_dir()
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
    env.update(extra or {})
    return env


def run_cli(lab, strategy, playbook=PLAYBOOK, extra_env=None, inventory=INVENTORY):
    """ansible-playbook as a plain subprocess; every output line is timestamped when it arrives."""
    env = dict(os.environ, **playbook_env(lab, strategy, extra_env))
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)]
    lines = []
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        lines.append((time.time(), line.rstrip("\n")))
    rc = proc.wait()
    t_end = time.time()
    result = {"t0": t0, "rc": rc, "playbook_s": rel(t_end, t0)}
    if rc != 0:
        result["tail"] = "\n".join(line[1] for line in lines[-40:])
    return result, lines


def cli_timeline(lines, t0):
    """Task start (its TASK header) and first result line per task, from the timestamped CLI output."""
    tasks = []
    current = None
    for stamp, text in lines:
        match = re.match(r"TASK \[(?:[^\]:]+ : )?(.*)\] \**$", text)
        if match:
            current = {"task": match.group(1), "start_s": rel(stamp, t0), "first_result_s": None}
            tasks.append(current)
        elif text.startswith("PLAY RECAP"):
            tasks.append({"task": "PLAY RECAP", "start_s": rel(stamp, t0), "first_result_s": None})
            current = None
        elif current and current["first_result_s"] is None and re.match(r"(ok|changed|skipping|included|fatal):", text):
            current["first_result_s"] = rel(stamp, t0)
    return tasks


def cli_module_timings(lines):
    for line in lines:
        match = re.search(r'"timings: (\{.*\})"', line[1])
        if match:
            with contextlib.suppress(ValueError, SyntaxError):
                import ast

                return ast.literal_eval(match.group(1))
    return None


def run_runner(lab, strategy, workdir, ident, playbook=PLAYBOOK, extra_env=None, inventory=INVENTORY):
    import ansible_runner

    Path(workdir).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    runner = ansible_runner.run(
        private_data_dir=str(workdir),
        playbook=str(playbook),
        inventory=str(inventory),
        envvars=playbook_env(lab, strategy, extra_env),
        ident=ident,
        quiet=True,
    )
    t_end = time.time()
    result = {"t0": t0, "rc": runner.rc, "playbook_s": rel(t_end, t0)}
    if runner.rc != 0:
        result["tail"] = runner.stdout.read()[-3000:]
    return result, list(runner.events)


def runner_timeline(events, t0):
    """Per task: controller start, result end, the worker's duration; plus playbook start and stats."""
    tasks = {}
    order = []
    marks = {}
    for event in events:
        kind = event.get("event")
        data = event.get("event_data", {})
        created = parse_iso(event["created"]) if event.get("created") else None
        if kind == "playbook_on_start":
            marks["playbook_on_start_s"] = rel(created, t0)
        elif kind == "playbook_on_stats":
            marks["playbook_on_stats_s"] = rel(created, t0)
        uuid = data.get("task_uuid")
        if not uuid:
            continue
        if uuid not in tasks:
            tasks[uuid] = {"task": data.get("task"), "start_s": None, "end_s": None, "duration_s": None, "status": None}
            order.append(uuid)
        entry = tasks[uuid]
        if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            entry["start_s"] = rel(created, t0)
        elif kind in ("runner_on_ok", "runner_on_skipped", "runner_on_failed", "runner_item_on_ok"):
            end = rel(created, t0)
            entry["end_s"] = end if entry["end_s"] is None else max(entry["end_s"], end)
            if kind != "runner_item_on_ok":
                entry["status"] = kind.replace("runner_on_", "")
                if data.get("duration") is not None:
                    entry["duration_s"] = round(max(data["duration"], entry["duration_s"] or 0.0), 4)
    return [tasks[uuid] for uuid in order if tasks[uuid]["start_s"] is not None], marks


def runner_results(events):
    out = {}
    for event in events:
        data = event.get("event_data", {})
        if event.get("event") != "runner_on_ok":
            continue
        task = data.get("task") or ""
        res = data.get("res", {})
        if task in (TASK_FAILOVER, TASK_ONE_CALL):
            out["failover"] = {"timings": res.get("timings"), "fence": res.get("fence"), "msg": res.get("msg")}
            if res.get("load_balancers"):
                out["haproxy"] = [{"timings": lb.get("timings"), "msg": lb.get("msg")} for lb in res["load_balancers"]]
        elif task == TASK_LB:
            items = res.get("results") or [res]
            out["haproxy"] = [{"timings": item.get("timings"), "msg": item.get("msg")} for item in items]
        elif task == TASK_VALIDATE:
            out["validate"] = {"elapsed_s": res.get("elapsed_s"), "rounds": res.get("rounds"), "msg": res.get("msg")}
        elif task == TASK_PROBE:
            out["probe"] = {"elapsed_s": res.get("elapsed_s"), "failing": res.get("failing")}
    return out


# ----------------------------------------------------------------------------- one run


def failover_run(variant, port_base, workdir, ident, standby_retry_interval=None):
    """A fresh lab, the writer, the break, one failover; the lab is removed before returning."""
    lab = Lab(port_base)
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
            elif driver in ("lean", "lean1"):
                playbook = workdir / "baseline" / f"{driver}.yml"
                result, lines = run_cli(lab, strategy, playbook, inventory="localhost,")
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


# ----------------------------------------------------------------------------- baselines


def timed(argv, env=None):
    started = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=REPO)
    elapsed = round(time.time() - started, 4)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return elapsed


def baselines(lab, strategies, playdir, workdir, ident):
    """Fixed costs, on a healthy lab (nothing to fail over)."""
    out = {
        "python -c pass": timed([sys.executable, "-c", "pass"]),
        "python -c 'import psycopg'": timed([sys.executable, "-c", "import psycopg"]),
        "ansible-playbook --version": timed([str(ANSIBLE_PLAYBOOK), "--version"]),
    }
    plan = [("noop.yml", "runner", "linear", None), ("noop.yml", "cli", "linear", None)]
    plan.append(("noop.yml", "cli", "linear", {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal"}))
    plan += [("debug10.yml", "cli", "linear", None), ("template3.yml", "cli", "linear", None)]
    plan.append(("ping5.yml", "cli", "linear", None))
    if "mitogen" in strategies:
        plan += [("noop.yml", "cli", "mitogen", None), ("ping5.yml", "cli", "mitogen", None)]
    for playbook, driver, strategy, extra in plan:
        name = f"{Path(playbook).stem} {driver}-{strategy}" + (" minimal-callback" if extra else "")
        if driver == "runner":
            name_id = f"{ident}-{Path(playbook).stem}"
            result = run_runner(lab, strategy, workdir / name_id, name_id, playdir / playbook)[0]
        else:
            result = run_cli(lab, strategy, playdir / playbook, extra)[0]
        if result["rc"] != 0:
            raise RuntimeError(f"baseline {name} failed:\n{result.get('tail')}")
        out[name] = result["playbook_s"]
    return out


# ----------------------------------------------------------------------------- summary and report


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


def fmt(stats, digits=2):
    if not stats:
        return "-"
    return f"{stats['median']:.{digits}f} [{stats['min']:.{digits}f}-{stats['max']:.{digits}f}]"


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
            f"{variant:16} {entry['runs_ok']:>2} {fmt(entry['first_write_s']):>20} {fmt(entry['validated_s']):>20} "
            f"{fmt(entry['playbook_s']):>20} {fmt(entry['promote_request_to_ready_s']):>20}",
            file=out,
        )
    for variant, entry in summary.items():
        print(f"\n{variant}:", file=out)
        for key, value in entry.items():
            if key.startswith("step ") or key in ("playbook_on_start_s", "playbook_on_stats_s", "promote_request_s"):
                print(f"  {key:40} {fmt(value, 3)}", file=out)
        for key, value in (entry.get("module_timings") or {}).items():
            print(f"  module {key:33} {fmt(value, 3)}", file=out)
        for row in entry.get("task_timeline_medians") or []:
            print(
                f"  task {row['task'][:52]:52} start {row['start_s']}  end {row['end_s']}  worker {row['duration_s']}",
                file=out,
            )
    if results.get("baselines"):
        print("\nbaselines (s), median [min-max]:", file=out)
        for name, value in results["baselines"].items():
            print(f"  {name:45} {fmt(value, 3)}", file=out)


# ----------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds; each runs every variant once (default 5)")
    parser.add_argument("--strategy", choices=["linear", "mitogen", "both"], default="both")
    parser.add_argument("--driver", choices=["runner", "cli", "both"], default="both")
    parser.add_argument("--no-raw", action="store_true", help="skip the plain-Python failovers")
    parser.add_argument("--no-lean", action="store_true", help="skip the lean prototype playbooks")
    parser.add_argument(
        "--variants", nargs="+", metavar="VARIANT", help="run only these variants (names as in the report)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the fixed-cost baselines")
    parser.add_argument("--port-base", type=int, default=56100, help="first port base to try (default 56100)")
    parser.add_argument(
        "--json", nargs="?", const=str(DEFAULT_JSON), help=f"write the results (default {DEFAULT_JSON})"
    )
    parser.add_argument(
        "--standby-retry-interval",
        metavar="VALUE",
        help="ALTER SYSTEM SET wal_retrieve_retry_interval on pg2 before the break (e.g. 5s, PostgreSQL's default)",
    )
    parser.add_argument("--keep", action="store_true", help="keep ansible-runner's artifacts directory")
    parser.add_argument("--report", metavar="PATH", help="print the report of a results file and exit")
    parser.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--raw-failover", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        writer_main()
        return 0
    if args.raw_failover:
        raw_failover_main()
        return 0
    if args.report:
        print_report(json.loads(Path(args.report).read_text(encoding="utf-8")))
        return 0

    strategies = ["linear", "mitogen"] if args.strategy == "both" else [args.strategy]
    if "mitogen" in strategies and mitogen_strategy_dir() is None:
        parser.error("mitogen is not installed: .venv/bin/pip install mitogen==0.3.54 (for the bench only)")
    drivers = ["runner", "cli"] if args.driver == "both" else [args.driver]
    variants = [f"{driver}-{strategy}" for strategy in strategies for driver in drivers]
    if not args.no_lean:
        variants += [f"{lean}-{strategy}" for lean in ("lean", "lean1") for strategy in strategies]
    if not args.no_raw:
        variants += ["raw", "raw-late", "raw-late-reload", "raw-late-reload-kick"]
    if args.variants:
        unknown = sorted(set(args.variants) - set(variants))
        if unknown:
            parser.error(f"unknown variants {unknown}: choose from {variants}")
        variants = [variant for variant in variants if variant in args.variants]
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"

    def on_signal(signum, frame):
        del frame
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="mttr-bench-failover-runner-"))
    playdir = workdir / "baseline"
    playdir.mkdir()
    for name, text in BASELINE_PLAYBOOKS.items():
        (playdir / name).write_text(text, encoding="utf-8")
    (playdir / "lean.yml").write_text(LEAN_PLAYBOOK, encoding="utf-8")
    (playdir / "lean1.yml").write_text(LEAN1_PLAYBOOK, encoding="utf-8")
    (playdir / "library").mkdir()
    (playdir / "library" / "mttr_bench_failover_one.py").write_text(BENCH_MODULE, encoding="utf-8")
    machine = machine_facts()
    machine["mitogen_strategy_dir"] = mitogen_strategy_dir()
    runs = []
    base_runs = []
    started = time.time()
    try:
        for round_no in range(1, args.runs + 1):
            if not args.no_baseline:
                lab = Lab(find_port_base(args.port_base))
                try:
                    lab.up()
                    base = baselines(lab, strategies, playdir, workdir, f"r{round_no}")
                    base["loadavg_1m"] = loadavg()[0]
                    base_runs.append(base)
                    log(f"round {round_no} baselines: {json.dumps(base)}")
                finally:
                    lab.down()
            for variant in variants:
                port_base = find_port_base(args.port_base)
                try:
                    run = failover_run(
                        variant, port_base, workdir, f"r{round_no}-{variant}", args.standby_retry_interval
                    )
                except (RuntimeError, OSError, ValueError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
                    log(f"round {round_no} {variant}: ERROR {exc}")
                    runs.append({"variant": variant, "round": round_no, "rc": -1, "error": str(exc)[-2000:]})
                    continue
                run["round"] = round_no
                runs.append(run)
                log(
                    f"round {round_no} {variant}: rc {run['rc']} first write {run['first_write_s']} s "
                    f"(port {run['writes']['first_write_port']}), validated {run.get('validated_s')} s, "
                    f"end {run['playbook_s']} s, promote req->ready {run['pg2_log']['request_to_ready_s']} s, "
                    f"load {run['loadavg_1m']}"
                )
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        cleanup_labs()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_end"] = loadavg()
    machine["bench_wall_s"] = round(time.time() - started, 1)
    summary, base = summarize(runs, base_runs)
    results = {
        "machine": machine,
        "config": {
            "runs": args.runs,
            "variants": variants,
            "write_interval_s": WRITE_INTERVAL_S,
            "write_interval_after_move_s": WRITE_INTERVAL_AFTER_S,
            "write_connect_timeout_s": WRITE_CONNECT_TIMEOUT_S,
            "raw_late_delay_s": RAW_LATE_DELAY_S,
            "standby_retry_interval": args.standby_retry_interval or "1s (the lab's setting)",
            "targets": {"first_write_s": TARGET_FIRST_WRITE_S, "validated_s": TARGET_VALIDATED_S},
        },
        "summary": summary,
        "baselines": base,
        "baseline_runs": base_runs,
        "runs": runs,
    }
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")
    return 0 if runs and all(run["rc"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
