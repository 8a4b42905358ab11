"""A webhook receiver for the communicate scenario.

``python webhook_receiver.py DIR`` listens on a free 127.0.0.1 port and writes DIR/port and DIR/pid; each POST's
path, Authorization header and JSON body is appended to DIR/received.jsonl. Paths ending in /fail answer 500, the
others 200. It stops by itself after 15 minutes, should the scenario's destroy step never run.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading

LIFETIME_S = 900


def main(directory):
    os.makedirs(directory, exist_ok=True)
    received = os.path.join(directory, "received.jsonl")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            post = {"path": self.path, "authorization": self.headers.get("Authorization"), "body": json.loads(body)}
            with open(received, "a", encoding="utf-8") as out:
                out.write(json.dumps(post) + "\n")
            self.send_response(500 if self.path.endswith("/fail") else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            """Quiet: verify reads received.jsonl."""

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Timer(LIFETIME_S, server.shutdown).start()
    with open(os.path.join(directory, "pid"), "w", encoding="utf-8") as out:
        out.write(str(os.getpid()))
    # Written last: its presence says the receiver is listening.
    with open(os.path.join(directory, "port.tmp"), "w", encoding="utf-8") as out:
        out.write(str(server.server_address[1]))
    os.replace(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
