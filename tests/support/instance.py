"""A throwaway service instance the replace engine starts: ``python instance.py --port P --pidfile F [--unhealthy]``.

Like the lab's app it binds first (a port in use fails the command), then detaches, writes its pid file and
returns; it serves ``/health`` (200 ``{"status": "ok", "port": P}``, or 503 with ``--unhealthy``) until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT = os.path.abspath(__file__)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--unhealthy", action="store_true")
    args = parser.parse_args()
    code = 503 if args.unhealthy else 200

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *rest):  # pylint: disable=redefined-builtin
            pass

        def do_GET(self):
            body = json.dumps({"status": "ok" if code == 200 else "down", "port": args.port}).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        os._exit(0 if os.read(ready_r, 1) else 1)  # returns once the pid file is written
    os.close(ready_r)
    os.setsid()
    if os.fork():
        os._exit(0)
    with open(args.pidfile, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    os.write(ready_w, b"1")
    os.close(ready_w)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
