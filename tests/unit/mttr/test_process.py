"""Pid-file control against real processes: only the lab's own are ever signalled."""

import subprocess
import sys

import pytest

from mttr.lab.process import LabError, Tracked, pid_alive, run, start_and_wait


@pytest.fixture
def sleeper(tmp_path):
    workdir = tmp_path / "svc"
    workdir.mkdir()
    proc = subprocess.Popen(["sleep", "60"], cwd=workdir)
    yield proc, workdir
    proc.kill()
    proc.wait()


def test_tracked_finds_its_own_process_by_cwd(sleeper, tmp_path):
    proc, workdir = sleeper
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{proc.pid}\n")
    tracked = Tracked("svc", pidfile, str(workdir))
    assert tracked.pid() == proc.pid
    assert tracked.stale() is None


def test_pid_file_of_another_program_is_stale_and_never_signalled(sleeper, tmp_path):
    proc = sleeper[0]
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{proc.pid}\n")
    tracked = Tracked("svc", pidfile, str(tmp_path / "elsewhere"))
    assert tracked.pid() is None
    assert tracked.terminate() is None
    assert tracked.kill() is None
    line = tracked.clean()
    assert "belongs to another program" in line
    assert not pidfile.exists()
    assert proc.poll() is None, "a process the lab did not start was signalled"


def test_pid_file_of_a_dead_process_is_cleaned(tmp_path):
    proc = subprocess.Popen(["true"])
    proc.wait()
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{proc.pid}\n")
    tracked = Tracked("svc", pidfile, str(tmp_path))
    assert "is not running" in tracked.clean()
    assert tracked.clean() is None


def test_garbage_pid_file_is_cleaned(tmp_path):
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text("not a pid\n")
    assert "held no pid" in Tracked("svc", pidfile, str(tmp_path)).clean()


def test_terminate_stops_the_process_and_removes_the_pid_file(sleeper, tmp_path):
    proc, workdir = sleeper
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{proc.pid}\n")
    assert Tracked("svc", pidfile, str(workdir)).terminate() == proc.pid
    assert proc.wait(5) is not None
    assert not pidfile.exists()


def test_kill_leaves_the_pid_file_like_a_crash(sleeper, tmp_path):
    proc, workdir = sleeper
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{proc.pid}\n")
    tracked = Tracked("svc", pidfile, str(workdir))
    assert tracked.kill() == proc.pid
    proc.wait(5)
    assert pidfile.exists()
    assert not pid_alive(proc.pid)
    assert "is not running" in tracked.clean()


def test_start_and_wait_reports_a_server_that_exits(tmp_path):
    log = tmp_path / "svc.log"
    with pytest.raises(LabError, match=r"exited with code 3 .*boom"):
        start_and_wait(
            [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
            what="svc",
            answers=lambda: False,
            pidfile=tmp_path / "svc.pid",
            logfile=log,
            cwd=tmp_path,
            timeout=10,
        )
    assert not (tmp_path / "svc.pid").exists()


def test_start_and_wait_kills_a_server_that_never_answers(tmp_path):
    with pytest.raises(LabError, match="did not answer within 1 s"):
        start_and_wait(
            ["sleep", "30"],
            what="svc",
            answers=lambda: False,
            pidfile=tmp_path / "svc.pid",
            logfile=tmp_path / "svc.log",
            cwd=tmp_path,
            timeout=1,
        )


def test_run_names_a_missing_binary():
    with pytest.raises(LabError, match="no-such-binary not found"):
        run(["no-such-binary"], what="probe")


def test_run_reports_the_error_line():
    with pytest.raises(LabError, match="probe failed: ERROR: it broke"):
        run(["sh", "-c", "echo noise >&2; echo 'ERROR: it broke' >&2; exit 1"], what="probe")
