import socket

import pytest

from mttr.lab import config
from mttr.lab.process import LabError


def test_port_base_from_env_and_validation(monkeypatch):
    monkeypatch.setenv("MTTR_LAB_PORT_BASE", "40000")
    assert config.port_base_from(None) == 40000
    assert config.port_base_from("41000") == 41000
    with pytest.raises(LabError, match="must be a number"):
        config.port_base_from("many")
    with pytest.raises(LabError, match="out of range"):
        config.port_base_from(80)
    with pytest.raises(LabError, match="out of range"):
        config.port_base_from(65530)


def test_default_ports_are_below_the_ephemeral_range(monkeypatch):
    """Linux hands out client ports from 32768 up (ip_local_port_range): a lab port there can be held by
    any program's outgoing connection, or its TIME_WAIT, and 'up' would refuse a port nobody listens on."""
    monkeypatch.delenv("MTTR_LAB_PORT_BASE", raising=False)
    base = config.port_base_from(None)
    assert base == config.DEFAULT_PORT_BASE
    ports = [base + offset for offset in config.PORT_OFFSETS.values()]
    assert max(ports) < 32768, ports
    assert min(ports) >= 1024, ports


def test_port_in_use_sees_a_real_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert config.port_in_use(port)
    assert not config.port_in_use(port)


def test_create_lays_out_ports_and_secrets(tmp_path):
    cfg = config.create(tmp_path, 30000, "/usr/bin/python3")
    assert cfg.ports == {"pg1": 30001, "pg2": 30002, "lb_db": 30010, "lb_http": 30020, "app": 30030, "s3": 30040}
    assert cfg.state["s3"]["endpoint_url"] == "http://127.0.0.1:30040"
    assert cfg.state["db"]["superuser_password"] != cfg.state["db"]["app_password"]
    cfg.save()
    assert (tmp_path / "lab.json").stat().st_mode & 0o777 == 0o600
    assert config.load(tmp_path).state == cfg.state


def test_missing_postgres_binaries_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("MTTR_PG_BIN", str(tmp_path))
    with pytest.raises(LabError, match=r"PostgreSQL server binaries not found.*MTTR_PG_BIN"):
        config.find_pg_bin()


def test_load_without_a_lab_says_how_to_start_one(tmp_path):
    with pytest.raises(LabError, match="mttr lab up"):
        config.load(tmp_path)
