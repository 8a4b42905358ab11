"""A webhook receiver on 127.0.0.1 that keeps every POST it gets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs in a process of its own: ansible-runner forks a pty, which a multi-threaded test process should not do.
RECEIVER = """
import http.server, json, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        post = {"path": self.path, "authorization": self.headers.get("Authorization"),
                "content_type": self.headers.get("Content-Type"), "body": json.loads(body)}
        with open(sys.argv[1], "a", encoding="utf-8") as out:
            out.write(json.dumps(post) + "\\n")
        self.send_response(500 if self.path.endswith("/fail") else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Receiver:
    """A webhook receiver on 127.0.0.1: paths ending in /fail answer 500, the others 200; every POST is kept."""

    def __init__(self, log: Path):
        self.log = log
        self.process = subprocess.Popen([sys.executable, "-c", RECEIVER, str(log)], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    @property
    def received(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdout.close()
