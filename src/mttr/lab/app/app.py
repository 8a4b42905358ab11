"""The lab's web app: one release of the "orders" service.

Deployed as ``releases/<version>/`` with a ``current`` symlink. Reads the shared connection
settings from ``../../shared/config.json`` and lets the release's own ``release.json`` override
them, the way real releases carry their configuration. Talks to PostgreSQL through HAProxy's
write endpoint with a fresh connection per request, so it follows a failover by itself.
"""

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))


def load_settings():
    with open(os.path.join(HERE, "..", "..", "shared", "config.json"), encoding="utf-8") as handle:
        settings = json.load(handle)
    with open(os.path.join(HERE, "release.json"), encoding="utf-8") as handle:
        release = json.load(handle)
    settings["db"].update(release.get("db", {}))
    settings["version"] = release["version"]
    return settings


SETTINGS = load_settings()


def connect():
    db = SETTINGS["db"]
    return psycopg.connect(
        host=db["host"],
        port=db["port"],
        dbname=db["dbname"],
        user=db["user"],
        password=db["password"],
        connect_timeout=2,
        application_name=f"lab-app/{SETTINGS['version']}",
    )


class Handler(BaseHTTPRequestHandler):
    server_version = "lab-app"

    def log_message(self, format, *args):
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health":
            self.health()
        elif url.path == "/version":
            self.reply(200, {"version": SETTINGS["version"]})
        elif url.path == "/orders":
            limit = int(parse_qs(url.query).get("limit", ["10"])[0])
            self.list_orders(limit)
        else:
            self.reply(404, {"error": f"no route {url.path}"})

    def do_POST(self):
        if urlparse(self.path).path != "/orders":
            self.reply(404, {"error": f"no route {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            order = json.loads(self.rfile.read(length) or b"{}")
            customer = str(order["customer"])
            amount = int(order["amount_cents"])
        except (ValueError, KeyError, TypeError) as exc:
            self.reply(400, {"error": f"expected JSON with customer and amount_cents: {exc}"})
            return
        try:
            with connect() as conn:
                row = conn.execute(
                    "INSERT INTO orders (customer, amount_cents) VALUES (%s, %s) RETURNING id",
                    (customer, amount),
                ).fetchone()
        except psycopg.Error as exc:
            self.reply(503, {"error": str(exc).strip()})
            return
        self.reply(201, {"id": row[0], "version": SETTINGS["version"]})

    def health(self):
        try:
            with connect() as conn:
                in_recovery, count = conn.execute(
                    "SELECT pg_is_in_recovery(), (SELECT count(*) FROM orders)"
                ).fetchone()
        except psycopg.Error as exc:
            self.reply(503, {"status": "down", "version": SETTINGS["version"], "error": str(exc).strip()})
            return
        if in_recovery:
            self.reply(503, {"status": "down", "version": SETTINGS["version"], "error": "database is read-only"})
            return
        self.reply(200, {"status": "ok", "version": SETTINGS["version"], "orders": count})

    def list_orders(self, limit):
        try:
            with connect() as conn:
                count = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
                rows = conn.execute(
                    "SELECT id, customer, amount_cents, created_at::text FROM orders ORDER BY id DESC LIMIT %s",
                    (limit,),
                ).fetchall()
        except psycopg.Error as exc:
            self.reply(503, {"error": str(exc).strip()})
            return
        keys = ("id", "customer", "amount_cents", "created_at")
        self.reply(200, {"count": count, "orders": [dict(zip(keys, row)) for row in rows]})


def daemonize(pidfile, logfile):
    """Detach (double fork), log to ``logfile`` and write ``pidfile``; the caller returns once it is written.

    The listening socket is bound before this, so a port in use fails the start command itself,
    and connections made as soon as the command returns wait in the backlog until the app serves.
    """
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        written = os.read(ready_r, 1)
        os._exit(0 if written else 1)
    os.close(ready_r)
    os.setsid()
    if os.fork():
        os._exit(0)
    log = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    with open(pidfile, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    os.write(ready_w, b"1")
    os.close(ready_w)


def main():
    parser = argparse.ArgumentParser(description="The lab's orders web app (one release).")
    parser.add_argument("--daemon", action="store_true", help="detach and return once the pid file is written")
    parser.add_argument("--pidfile", help="where to write the process id (required with --daemon)")
    parser.add_argument("--log", default=os.devnull, help="with --daemon: append output to this file")
    parser.add_argument("--port", type=int, help="listen on this port instead of the shared configuration's")
    args = parser.parse_args()
    if args.daemon and not args.pidfile:
        parser.error("--daemon needs --pidfile")
    port = args.port or SETTINGS["port"]
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    if args.daemon:
        daemonize(args.pidfile, args.log)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stderr.write(f"lab app {SETTINGS['version']} listening on 127.0.0.1:{port}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
