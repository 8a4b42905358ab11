"""The benchmark's handle on its HTTP target: ``server.py`` in a process of its own, its request and CPU
counters around a measurement, and its capacity against a bare asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

SERVER = Path(__file__).resolve().parent / "server.py"


class Server:
    """The local HTTP target (server.py) in a process of its own; it stops when its stdin closes."""

    def __init__(self, kind, delay_ms=0.0):
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "--kind", kind, f"--delay-ms={delay_ms}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"the benchmark server did not start (said {line!r})")
        self.port = int(line[1])
        self.url_base = f"http://127.0.0.1:{self.port}"

    def stats(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/__stats")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    @contextlib.contextmanager
    def measure(self, into):
        """Add the server's request count and CPU seconds spent inside the block to ``into``."""
        before = self.stats()
        yield
        after = self.stats()
        into["server_requests"] = after["requests"] - before["requests"]
        into["server_cpu_s"] = round(after["cpu_s"] - before["cpu_s"], 4)

    def stop(self):
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _hammer(port, count, concurrency):
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(index):
        nonlocal ok
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /health?i={index} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = await reader.read()
            writer.close()
            ok += data.startswith(b"HTTP/1.1 200 ")

    await asyncio.gather(*(one(i) for i in range(count)))
    return ok


def server_capacity(server, count, concurrency):
    """Hit the server with a bare asyncio client (much cheaper per request than http.client in threads)."""
    result = {"client": "asyncio streams", "count": count, "concurrency": concurrency}
    with server.measure(result):
        started = time.perf_counter()
        result["ok"] = asyncio.run(_hammer(server.port, count, concurrency))
        result["wall_s"] = round(time.perf_counter() - started, 4)
    result["requests_per_s"] = round(count / result["wall_s"])
    result["server_cpu_ms_per_request"] = round(result["server_cpu_s"] * 1000 / count, 4)
    return result
