"""serve-registry under load (see docs/operations.md): reads at 64 concurrent clients
(p50/p99, against ``mlflow server`` on the same kind of read), two replicas against
one, and the server's RSS over a bounded mixed read/publish run.

Every server is real and on loopback: ``regctl serve-registry`` over a folder root
(replicas share it), and ``mlflow server`` (SQLite, one worker) when it starts.
The read is "one version's facts": ``GET /api/v1/models/NAME/-/versions/1`` on
regctl, ``GET /api/2.0/mlflow/model-versions/get?name=NAME&version=1`` on MLflow.
The reads of both servers are made by the same generator, ``bench/loadgen.py``:
one separate process, one asyncio event loop, one keep-alive HTTP/1.1 connection
per client (no HTTP library; a few microseconds per request: its CPU seconds are
printed beside each figure). It replaced 64 threads of ``http.client`` inside this
process, whose GIL contention showed up as server latency. ``ab`` is not used: it
speaks HTTP/1.0, which uvicorn never keeps alive, so every request would open a
connection. The servers run with their defaults (one uvicorn process each, text
access log). Figures are printed, never asserted.

Usage: python bench/bench_service.py [--seconds 10] [--clients 64] [--minutes 2]
       [--skip-mlflow] [--skip-rss]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.core.tokens import Tokens  # noqa: E402
from registry_cli.server.launch import ServeRegistryProcess  # noqa: E402

NAME = "bench/service"
P99_TARGET_MS = 50.0
REPLICA_TARGET = 1.6


def populate(root: Path, work: Path) -> dict[str, str]:
    reg = ModelRegistry(root, actor="bench")
    reg.init()
    book = Tokens(reg.store, reg.states, "bench")
    tokens = {s: book.create(f"bench-{s}", [s]).secret for s in ("read", "publish")}
    weights = work / "w.bin"
    weights.write_bytes(os.urandom(4096))
    for i in range(5):
        reg.publish(NAME, [weights], metrics={"acc": 0.7 + i / 100})
    return tokens


def load(
    targets: list[tuple[str, int]], path: str, headers: dict[str, str], clients: int, seconds: float
) -> dict[str, float]:
    """``clients`` keep-alive connections spread over ``targets``, each GETting ``path``
    for ``seconds`` (bench/loadgen.py, in a process of its own); latency percentiles (ms),
    requests per second and the generator's own CPU seconds."""
    cmd = [sys.executable, str(REPO / "bench" / "loadgen.py"), "--path", path]
    cmd += [f"--clients={clients}", f"--seconds={seconds}", "--percentiles-only"]
    for host, port in targets:
        cmd += ["--target", f"{host}:{port}"]
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
    r = json.loads(done.stdout)
    if not r["requests"]:
        return {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "errors": r["errors"]}
    return {
        "rps": r["requests"] / r["seconds"],
        "p50": r["p50"],
        "p99": r["p99"],
        "errors": r["errors"],
        "generator_cpu_s": r["cpu_s"],
    }


def show(label: str, r: dict[str, float]) -> None:
    print(
        f"  {label:<28} {r['rps']:8.0f} req/s   p50 {r['p50']:6.1f} ms   p99 {r['p99']:6.1f} ms"
        f"   errors {int(r['errors'])}   generator CPU {r.get('generator_cpu_s', 0):.1f} s",
        flush=True,
    )


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def mixed_run(srv: ServeRegistryProcess, tokens: dict[str, str], minutes: float) -> None:
    """Readers and one publisher for ``minutes``; the server's RSS sampled throughout."""
    assert srv.proc is not None
    host, port = "127.0.0.1", srv.port
    read = {"Authorization": f"Bearer {tokens['read']}"}
    stop = threading.Event()
    published = [0]

    def reader() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        paths = [f"/api/v1/models/{NAME}/-/versions", "/api/v1/models", "/api/v1/health"]
        n = 0
        while not stop.is_set():
            conn.request("GET", paths[n % len(paths)], headers=read)
            conn.getresponse().read()
            n += 1
        conn.close()

    def publisher() -> None:
        boundary = "bench-boundary"
        while not stop.is_set():
            data = os.urandom(64 * 1024)
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                    'filename="w.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
                ).encode()
                + data
                + f"\r\n--{boundary}--\r\n".encode()
            )
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request(
                "POST",
                f"/api/v1/models/{NAME}-mixed/-/versions",
                body=body,
                headers={
                    "Authorization": f"Bearer {tokens['publish']}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )
            if conn.getresponse().status == 201:
                published[0] += 1
            conn.close()
            stop.wait(1.0)

    workers = [threading.Thread(target=reader) for _ in range(4)]
    workers.append(threading.Thread(target=publisher))
    for w in workers:
        w.start()
    samples: list[tuple[float, int]] = []
    begin = time.monotonic()
    end = begin + minutes * 60
    while time.monotonic() < end:
        samples.append((time.monotonic() - begin, rss_kib(srv.proc.pid)))
        time.sleep(5)
    stop.set()
    for w in workers:
        w.join()
    warm = [kib for at, kib in samples if at >= minutes * 60 * 0.1] or [samples[-1][1]]
    first, last, peak = warm[0], warm[-1], max(warm)
    drift = (last - first) / first * 100
    print(
        f"  RSS after warm-up {first / 1024:.1f} MiB -> end {last / 1024:.1f} MiB "
        f"(peak {peak / 1024:.1f} MiB, {drift:+.1f} %; target within +-10 %), "
        f"{published[0]} versions published, {len(samples)} samples",
        flush=True,
    )


def mlflow_reads(work: Path, clients: int, seconds: float) -> dict[str, float] | None:
    try:
        from bench_mlflow_registry import populate_mlflow

        from tests.mlflow_server import MlflowServer
    except ImportError as exc:
        print(f"  mlflow server: not runnable here ({exc})")
        return None
    base = work / "mlflow"
    base.mkdir()
    try:
        with MlflowServer(base) as uri:
            name = populate_mlflow(uri, base)
            port = int(uri.rsplit(":", 1)[1])
            path = f"/api/2.0/mlflow/model-versions/get?name={name}&version=1"
            return load([("127.0.0.1", port)], path, {}, clients, seconds)
    except RuntimeError as exc:
        print(f"  mlflow server did not start: {str(exc).splitlines()[0]}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per read phase")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=2.0, help="the mixed RSS run")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="regctl-bench-service-") as tmp:
        work = Path(tmp)
        root = work / "registry"
        tokens = populate(root, work)
        read = {"Authorization": f"Bearer {tokens['read']}"}
        path = f"/api/v1/models/{NAME}/-/versions/1"
        # the servers run this checkout's code, whatever is installed
        pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        env = {"HOME": str(work), "NO_COLOR": "1", "PYTHONPATH": pythonpath}
        print(f"reads of one version, {args.clients} clients, {args.seconds:.0f} s each:")
        a = ServeRegistryProcess(root, log=work / "a.log", env=env).start()
        b = ServeRegistryProcess(root, log=work / "b.log", env=env).start()
        try:
            load([("127.0.0.1", a.port)], path, read, 8, 2)  # warm-up
            one = load([("127.0.0.1", a.port)], path, read, args.clients, args.seconds)
            show("serve-registry, 1 replica", one)
            two = load(
                [("127.0.0.1", a.port), ("127.0.0.1", b.port)],
                path,
                read,
                args.clients,
                args.seconds,
            )
            show("serve-registry, 2 replicas", two)
            ratio = two["rps"] / one["rps"] if one["rps"] else float("nan")
            print(f"  2 replicas / 1: {ratio:.2f}x (target >= {REPLICA_TARGET}x)")
            print(f"  p99 target < {P99_TARGET_MS:.0f} ms: 1 replica {one['p99']:.1f} ms")
        finally:
            b.stop()
        if not args.skip_mlflow:
            theirs = mlflow_reads(work, args.clients, args.seconds)
            if theirs is not None:
                show("mlflow server (1 worker)", theirs)
                if theirs["rps"]:
                    print(f"  serve-registry / mlflow: {one['rps'] / theirs['rps']:.1f}x")
        if not args.skip_rss:
            print(f"mixed reads + publishes for {args.minutes:g} min:")
            mixed_run(a, tokens, args.minutes)
        a.stop()
        print(json.dumps({"one": one, "two": two}, default=float))


if __name__ == "__main__":
    main()
