"""Real listeners on 127.0.0.1 for the probe engine's and the health_check module's tests.

An HTTP(S) server that counts what it serves, a TCP socket that never answers, a self-signed certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

JSON_DOC = {"status": "ok", "version": 3, "items": [{"id": 7}, {"id": 9}], "checks": {"db": True}}


class Handler(BaseHTTPRequestHandler):
    """Routes: /ok, /status/<code>, /json, /text, /slow/<ms>, /work, /script/<key>, /ready, /echo."""

    server: TargetServer

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def reply(self, code: int, body: str | bytes = b"", content_type: str = "text/plain") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self) -> None:
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        server = self.server
        with server.lock:
            server.hits[path] += 1
        if path == "/ok":
            self.reply(200, "all good")
        elif parts[0] == "status":
            self.reply(int(parts[1]), f"status {parts[1]}")
        elif path == "/json":
            self.reply(200, json.dumps(JSON_DOC), "application/json")
        elif path == "/text":
            self.reply(200, "plain words, not JSON")
        elif parts[0] == "slow":
            time.sleep(int(parts[1]) / 1000)
            self.reply(200, "slow but fine")
        elif path == "/work":
            with server.lock:
                server.active += 1
                server.max_active = max(server.max_active, server.active)
            time.sleep(0.2)
            with server.lock:  # before replying, so the client's next request cannot overlap this one
                server.active -= 1
            self.reply(200, "worked")
        elif parts[0] == "script":
            with server.lock:
                codes = server.scripts[parts[1]]
                code = codes.pop(0) if len(codes) > 1 else codes[0]
            self.reply(code, f"scripted {code}")
        elif path == "/ready":
            ready = time.monotonic() >= server.ready_at
            self.reply(200 if ready else 503, "ready" if ready else "starting")
        elif path == "/echo":
            length = int(self.headers.get("Content-Length") or 0)
            doc = {
                "method": self.command,
                "query": urlsplit(self.path).query,
                "token": self.headers.get("X-Token"),
                "body": self.rfile.read(length).decode(),
            }
            self.reply(200, json.dumps(doc), "application/json")
        else:
            self.reply(404, "no such page")

    do_GET = do_POST = do_PUT = route


class TargetServer(ThreadingHTTPServer):
    """A threaded HTTP (or HTTPS) server on 127.0.0.1 that counts what it serves."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, tls: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.hits: Counter[str] = Counter()
        self.scripts: dict[str, list[int]] = {}
        self.ready_at = 0.0
        self.scheme = "https" if tls else "http"
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/ok", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class SilentListener:
    """A TCP socket that listens but never accepts: connections complete, nothing is ever answered."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class SelfSignedCert:
    """A self-signed certificate for 127.0.0.1 and localhost, usable as its own CA bundle."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="probe-tls-"))
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mttr probe test")])
        now = datetime.datetime.now(datetime.UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.cert_path = self.dir / "cert.pem"
        self.key_path = self.dir / "key.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
