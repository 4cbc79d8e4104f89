"""Fleet reports (issue 24): one serve-registry taking 10,000 devices x 1 report/min.

    python bench/bench_fleet.py            # 10,000 devices, 60 s of reports at 170/s
    python bench/bench_fleet.py --small    # 2,000 devices, 15 s

1. Fill: every device reports once (batches of 500 through the API), so the fleet
   holds all of them.
2. Load: reports POSTed one per request at 10,000/60 ≈ 167/s, open loop (each request
   has its time slot; latency counts from the slot, so a slow server cannot hide
   behind a slow client), by 8 keep-alive client threads on loopback, while one more
   thread reads (``/api/v1/resolve`` and ``/dist/.../LATEST.json``) back to back.
   Figures: achieved rate, report latency p50/p99/max, read latency p50/p99, the
   server's resident memory before and after. Target: p99 < 100 ms, memory flat.
3. ``regctl fleet status demo --json`` over all devices: the whole CLI process on the
   root (median of 3), and ``GET /api/v1/fleet/status`` from the server. Target < 1 s.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.core.tokens import Tokens  # noqa: E402
from registry_cli.server.launch import ServeRegistryProcess  # noqa: E402

ENV = dict(os.environ, NO_COLOR="1", REGCTL_ACTOR="bench", REGCTL_FLEET_STEP_INTERVAL="3600")
RINGS = ("canary", "plant-a", "plant-b", "plant-c")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(n: int, seq: int) -> dict:
    return {
        "report_id": f"b-{n}-{seq}",
        "device": f"dev-{n:05d}",
        "ring": RINGS[n % len(RINGS)],
        "model": "demo",
        "version": "v1",
        "manifest_sha256": None,
        "state": "healthy" if n % 50 else "unhealthy",
        "detail": None,
    }


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        reply = self.conn.getresponse()
        return reply.status, reply.read()


def fill(port: int, token: str, devices: int) -> float:
    client = Client(port, token)
    started = time.perf_counter()
    for start in range(0, devices, 500):
        batch = [report(n, 0) for n in range(start, min(devices, start + 500))]
        status, body = client.call("POST", "/api/v1/fleet/reports", batch)
        assert status == 200, body
    return time.perf_counter() - started


def load(port: int, tokens: dict[str, str], devices: int, seconds: float) -> dict:
    rate = devices / 60.0
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.5
    lock = threading.Lock()
    next_index = [0]
    latencies: list[float] = []
    service: list[float] = []
    failures = [0]
    reads: list[float] = []
    stop = threading.Event()

    def sender() -> None:
        client = Client(port, tokens["report"])
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= total:
                return
            slot = t0 + i / rate
            delay = slot - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            status, _body = client.call("POST", "/api/v1/fleet/reports", report(i % devices, 1 + i))
            done = time.perf_counter()
            with lock:
                latencies.append(done - slot)
                service.append(done - sent)
                failures[0] += status != 200

    def reader() -> None:
        client = Client(port, tokens["read"])
        paths = ("/api/v1/resolve?ref=demo@champion&bundle=false", "/dist/release/demo/LATEST.json")
        k = 0
        while not stop.is_set():
            started = time.perf_counter()
            status, _ = client.call("GET", paths[k % 2])
            reads.append(time.perf_counter() - started)
            k += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    read_thread = threading.Thread(target=reader)
    read_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    stop.set()
    read_thread.join()
    return {
        "reports": total,
        "target_rate": rate,
        "achieved_rate": total / elapsed,
        "failures": failures[0],
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "service_p99_ms": pct(service, 99) * 1000,
        "reads": len(reads),
        "read_p50_ms": pct(reads, 50) * 1000,
        "read_p99_ms": pct(reads, 99) * 1000,
    }


def status_times(root: Path, port: int, token: str) -> dict:
    cli = []
    for _ in range(3):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "registry_cli", "--root", str(root), "fleet", "status", "demo",
             "--json"],
            check=True, env=ENV, capture_output=True, text=True,
        )  # fmt: skip
        cli.append(time.perf_counter() - started)
    devices = json.loads(out.stdout)["models"][0]["devices"]
    client = Client(port, token)
    api = []
    for _ in range(3):
        started = time.perf_counter()
        status, _ = client.call("GET", "/api/v1/fleet/status?name=demo")
        api.append(time.perf_counter() - started)
    return {"devices": devices, "cli_s": statistics.median(cli), "api_s": statistics.median(api)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="2,000 devices, 15 s of load")
    args = parser.parse_args()
    devices, seconds = (2000, 15.0) if args.small else (10_000, 60.0)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        root = work / "registry"
        reg = ModelRegistry(root)
        reg.init()
        (work / "m.pt").write_bytes(os.urandom(4096))
        reg.publish("demo", [work / "m.pt"])
        reg.promote("demo")
        book = Tokens(reg.store, reg.states, "bench")
        tokens = {s: book.create(f"bench-{s}", [s]).secret for s in ("report", "read")}
        with ServeRegistryProcess(root, log=work / "server.log", env=ENV) as srv:
            pid = srv.proc.pid
            fill_s = fill(srv.port, tokens["report"], devices)
            rss_before = rss_mib(pid)
            figures = load(srv.port, tokens, devices, seconds)
            rss_after = rss_mib(pid)
            status = status_times(root, srv.port, tokens["read"])
        print(f"fleet bench: {devices} devices, {seconds:g} s of reports (loopback, one server)")
        print(f"  fill: {devices} first reports in batches of 500: {fill_s:.1f} s")
        print(
            f"  reports: {figures['reports']} at {figures['achieved_rate']:.0f}/s "
            f"(target {figures['target_rate']:.0f}/s), {figures['failures']} failed; latency "
            f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
            f"max {figures['max_ms']:.1f} ms (service p99 {figures['service_p99_ms']:.1f} ms)"
        )
        print(
            f"  reads meanwhile: {figures['reads']}, p50 {figures['read_p50_ms']:.1f} ms, "
            f"p99 {figures['read_p99_ms']:.1f} ms"
        )
        print(f"  server RSS: {rss_before:.0f} MiB before the load, {rss_after:.0f} MiB after")
        print(
            f"  fleet status over {status['devices']} devices: CLI process "
            f"{status['cli_s']:.2f} s (median of 3), API {status['api_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
