"""A small HTTP/1.1 load generator for bench/bench_service.py, run as its own process.

    python bench/loadgen.py --target 127.0.0.1:8080 [--target ...] --path /api/v1/health \
        [--header "Authorization: Bearer T"] [--clients 64] [--seconds 10] [--start-in 0.5]

``--clients`` connections (keep-alive, HTTP/1.1), spread over the targets in turn,
each sending one GET at a time and waiting for the whole reply (closed loop), on
one event loop (uvloop when installed, else asyncio's) with no HTTP library: a
request is one pre-built byte string, a reply is read up to its ``Content-Length``
(or to the end of its chunks), parsed where it arrived. The latency of a request
is from its write to its last byte. The whole generator costs one process and
some 40 (uvloop) to 100 (asyncio) microseconds of CPU per request, far less than
threads with ``http.client`` inside the benchmark's own interpreter, whose GIL
contention used to show up as server latency.

Prints one JSON object: requests, errors, the seconds measured, the generator's
own CPU seconds, the loop it ran on, and every latency in milliseconds
(``--percentiles-only``: the p50/p90/p99/max instead).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import resource
import sys
import time

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.IGNORECASE)


def _same(client: Client) -> Client:
    return client


class Client(asyncio.Protocol):
    """One keep-alive connection: GET, wait for the whole reply, again, until ``stop_at``."""

    def __init__(self, request: bytes, stop_at: float, latencies: list[float]) -> None:
        self.request = request
        self.stop_at = stop_at
        self.latencies = latencies
        self.errors = 0
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if time.monotonic() >= self.stop_at:
            self.transport.close()
            return
        self.buffer.clear()
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        # a reply mostly arrives in one piece: parse it where it lies, copying nothing
        if self.buffer:
            self.buffer += data
            reply: bytes | bytearray = self.buffer
        else:
            reply = data
        end = reply.find(b"\r\n\r\n")
        if end < 0:
            self._keep(reply, data)
            return
        length = _LENGTH.search(reply, 0, end)
        if length is not None:
            if len(reply) - end - 4 < int(length.group(1)):
                self._keep(reply, data)
                return
        elif _CHUNKED.search(reply, 0, end) is not None:
            if not reply.endswith(b"0\r\n\r\n"):
                self._keep(reply, data)
                return
        else:  # nothing says where the reply ends: count it and go on
            self.errors += 1
        self.latencies.append((time.perf_counter() - self.sent_at) * 1000)
        if not reply.startswith(b"HTTP/1.1 200"):
            self.errors += 1
        self.send()

    def _keep(self, reply: bytes | bytearray, data: bytes) -> None:
        if reply is data:  # the first piece of a reply that goes on
            self.buffer += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    targets = [t.rsplit(":", 1) for t in args.target]
    start_at = time.monotonic() + args.start_in
    stop_at = start_at + args.seconds
    latencies: list[float] = []
    clients: list[Client] = []
    for i in range(args.clients):
        host, port = targets[i % len(targets)]
        headers = "".join(f"{h}\r\n" for h in args.header)
        request = f"GET {args.path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}\r\n".encode()
        client = Client(request, stop_at, latencies)
        clients.append(client)
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    began = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    for i, client in enumerate(clients):
        host, port = targets[i % len(targets)]
        await loop.create_connection(functools.partial(_same, client), host, int(port))
    await asyncio.gather(*(c.done for c in clients))
    elapsed = time.monotonic() - began
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    doc: dict[str, object] = {
        "requests": len(latencies),
        "errors": sum(c.errors for c in clients),
        "seconds": elapsed,
        "cpu_s": cpu,
    }
    if args.percentiles_only:
        every = sorted(latencies)
        n = len(every)
        for label, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            doc[label] = every[min(n - 1, int(n * q))] if n else None
        doc["max"] = every[-1] if n else None
    else:
        doc["latencies_ms"] = [round(x, 3) for x in latencies]
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", required=True, help="HOST:PORT")
    parser.add_argument("--path", required=True)
    parser.add_argument("--header", action="append", default=[], help='"Name: value"')
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--start-in", type=float, default=0.5)
    parser.add_argument("--percentiles-only", action="store_true")
    args = parser.parse_args()
    try:  # uvloop (the dev extra) halves the generator's own CPU per request
        import uvloop

        doc = uvloop.run(run(args))
        doc["loop"] = "uvloop"
    except ImportError:
        doc = asyncio.run(run(args))
        doc["loop"] = "asyncio"
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
