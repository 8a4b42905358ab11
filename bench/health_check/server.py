"""Local HTTP target for the health_check benchmark.

Run as ``python server.py [--kind asyncio|threading] [--port 0]``: it binds 127.0.0.1 (port 0 = a
free port chosen by the kernel), prints ``PORT <n>`` on stdout and serves until stdin closes or it is
terminated.

Every path answers ``200 {"status": "ok"}`` (after ``--delay-ms``, default 0) and closes the connection,
except ``/__stats``, which answers with the number of requests served so far and this process's CPU
time, so the benchmark can check that every probe reached the server and how busy the server was while
it did.

``asyncio`` (the default) is a bare asyncio protocol: one thread, no per-connection thread, a listen
backlog of 4096. ``threading`` is the standard library's ThreadingHTTPServer (a thread per
connection), kept to compare with; its backlog is raised from 5 as well, otherwise concurrent
connects overflow it and wait for SYN retransmits (1 s and more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b'{"status": "ok"}'
BACKLOG = 4096
STATS = {"requests": 0}
DELAY = {"s": 0.0}  # --delay-ms: how long each health answer waits, to stand in for network and service latency


def stats_body():
    return json.dumps(
        {"requests": STATS["requests"], "cpu_s": time.process_time(), "pid": os.getpid()},
    ).encode()


def response(body):
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


OK_RESPONSE = response(BODY)


class HealthProtocol(asyncio.Protocol):
    """Reads one request head, answers it and closes. Request bodies are not expected."""

    def __init__(self):
        self.transport = None
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        request_line = self.buffer.split(b"\r\n", 1)[0].split(b" ")
        path = request_line[1] if len(request_line) > 1 else b"/"
        if path == b"/__stats":
            self.answer(response(stats_body()))
            return
        STATS["requests"] += 1
        if DELAY["s"]:
            asyncio.get_running_loop().call_later(DELAY["s"], self.answer, OK_RESPONSE)
        else:
            self.answer(OK_RESPONSE)

    def answer(self, data):
        if not self.transport.is_closing():
            self.transport.write(data)
            self.transport.close()


async def serve_asyncio(port, ready):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HealthProtocol, "127.0.0.1", port, backlog=BACKLOG, reuse_address=True)
    ready(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    async with server:
        await stop.wait()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/__stats":
            body = stats_body()
        else:
            STATS["requests"] += 1  # under the GIL; an occasional lost count would show as a mismatch
            body = BODY
            if DELAY["s"]:
                time.sleep(DELAY["s"])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    request_queue_size = BACKLOG
    daemon_threads = True


def serve_threading(port, ready):
    server = QuietServer(("127.0.0.1", port), Handler)
    ready(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while sys.stdin.buffer.read(4096):
        pass
    server.shutdown()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["asyncio", "threading"], default="asyncio")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait this long before each health answer")
    args = parser.parse_args(argv)
    DELAY["s"] = args.delay_ms / 1000

    def ready(port):
        print(f"PORT {port}", flush=True)

    if args.kind == "asyncio":
        asyncio.run(serve_asyncio(args.port, ready))
    else:
        serve_threading(args.port, ready)


if __name__ == "__main__":
    main()
