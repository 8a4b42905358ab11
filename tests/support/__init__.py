"""Test support shared by the unit and integration tests: throwaway servers and the helpers around them.

Imported by its full name (``ansible_collections.mttr.recovery.tests.support.<module>``), never through a
``conftest.py``: ``tests/conftest.py`` is imported as the top-level module ``conftest`` by the tests
(``from conftest import run_playbook``), and fixtures stay in the test modules and the conftests that use them.

- ``processes``: a free loopback port and the engines' command runner.
- ``postgres``: a throwaway PostgreSQL server (binaries from the lab's ``find_pg_bin()``) and commands run as
  the ``postgres`` user.
- ``moto``: moto's server for real boto3 clients over HTTP (S3, EC2, Route 53).
- ``listeners``: HTTP(S) servers, a TCP socket that never answers and a self-signed certificate (probes).
- ``haproxy``: a throwaway HAProxy with its runtime API (TCP, or HTTP with health-checked servers).
- ``instance``: a service instance that detaches and writes its pid file (what the replace engine starts).
- ``webhooks``: a webhook receiver in a process of its own.
- ``backups``: backup repositories' raw objects, manifests, directory trees, a small filesystem.
- ``snapshots``: release trees and a command runner answering with canned output.
- ``awx_collection``: the awx.awx modules' argument specs (from the ``ansible`` wheel on PyPI, cached), to
  check AWX configuration-as-code against.
- ``alertmanager``: Alertmanager webhook payloads (version 4) shaped as Alertmanager 0.27 sends them, and a
  poster with a bearer token or an HMAC signature.
"""
