"""Prediction serving: ``regctl serve`` against ``mlflow models serve``, same model,
same client, same run.

    python bench/bench_serve.py            # 4 interleaved rounds x 1,000 requests per server
    python bench/bench_serve.py --small    # 2 rounds x 300 requests

The model is a tiny torch sequence model ([N, 12, 18] → [N, 2]) saved once with
``mlflow.pytorch.save_model``; that one MLflow model directory is published to a
regctl registry and served by both servers (``mlflow models serve
--env-manager local``). The client (keep-alive ``http.client`` connections, one
per thread, each request timed) sends one [12, 18] example per request:
``{"X": ...}`` to ``/predict`` and ``{"inputs": [...]}`` to ``/invocations``.
As an extra row, regctl also serves the same weights as a ``torch.export`` program.

Target (issue 6): regctl throughput >= 1.0x MLflow's, and a lower p99 latency.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ENV = dict(os.environ, NO_COLOR="1", REGCTL_ACTOR="bench", MLFLOW_TRACKING_URI="")
# `mlflow models serve` runs `uvicorn` from PATH: make it this interpreter's.
ENV["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), ENV.get("PATH", "")])
T, F = 12, 18


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_torch_model():
    import torch

    class TinySeq(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(F, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.mean(dim=1))

    torch.manual_seed(0)
    return TinySeq().eval()


def build_models(work: Path) -> tuple[Path, Path]:
    """The same tiny model as an MLflow model directory and as a torch.export program."""
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    model = tiny_torch_model()
    sig = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, T, F))]))
    mlflow_dir = work / "mlflow-model"
    example = np.zeros((2, T, F), dtype=np.float32)  # batch > 1 keeps the batch dim dynamic
    mlflow.pytorch.save_model(model, str(mlflow_dir), signature=sig, input_example=example)
    pt2 = work / "export" / "model.pt2"
    pt2.parent.mkdir()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (torch.randn(2, T, F),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, str(pt2))
    return mlflow_dir, pt2


def regctl(root: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "registry_cli", "--root", str(root), *args],
        env=ENV,
        check=True,
        capture_output=True,
    )


def wait_ready(url: str, proc: subprocess.Popen, log: Path, deadline_s: float = 180) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"server exited with {proc.returncode} before it was ready:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                body = reply.read()
                if b'"model_loaded":false' not in body:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {deadline_s} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server and its children (its own process group: mlflow spawns uvicorn)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def load(port: int, path: str, body: bytes, total: int, threads: int) -> tuple[list[float], float]:
    """``total`` POSTs from ``threads`` keep-alive connections: (latencies, wall time)."""
    per_thread = total // threads
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    headers = {"Content-Type": "application/json"}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_thread):
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            reply = conn.getresponse()
            reply.read()
            mine.append(time.perf_counter() - t0)
            if reply.status != 200:
                failures.append(str(reply.status))
        conn.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. HTTP {failures[0]}")
    return latencies, wall


class Target:
    """One server under test: started once, loaded in interleaved rounds."""

    def __init__(
        self, label: str, cmd: list[str], ready: str, port: int, path: str, body: bytes, log: Path
    ) -> None:
        self.label, self.port, self.path, self.body = label, port, path, body
        self.ready = f"http://127.0.0.1:{port}{ready}"
        self.log = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(
                cmd, env=ENV, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.latencies: list[float] = []
        self.wall = 0.0

    def round(self, total: int, threads: int) -> None:
        lat, wall = load(self.port, self.path, self.body, total, threads)
        self.latencies += lat
        self.wall += wall

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        return {
            "rps": len(lat) / self.wall,
            "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)] * 1000,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="quick run (2 x 300 requests)")
    parser.add_argument("--requests", type=int, default=None, help="requests per round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    per_round = args.requests or (300 if args.small else 1000)
    rounds = args.rounds or (2 if args.small else 4)

    work = Path(tempfile.mkdtemp(prefix="regctl-bench-serve-"))
    targets: list[Target] = []
    try:
        mlflow_dir, pt2 = build_models(work)
        root = work / "registry"
        regctl(root, "publish", "tiny", str(mlflow_dir))
        regctl(root, "promote", "tiny")
        regctl(root, "publish", "tiny-export", str(pt2), "--example-shape", f"1,{T},{F}")
        regctl(root, "promote", "tiny-export")

        import numpy as np

        x = np.random.default_rng(0).standard_normal((T, F)).astype(np.float32).tolist()
        port = free_port()
        mlflow_cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(mlflow_dir)]
        mlflow_cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
        targets.append(
            Target(
                "mlflow models serve",
                mlflow_cmd,
                "/ping",
                port,
                "/invocations",
                json.dumps({"inputs": [x]}).encode(),
                work / "mlflow.log",
            )
        )
        for name, label in (
            ("tiny", "regctl serve (same MLflow model)"),
            ("tiny-export", "regctl serve (torch.export program)"),
        ):
            port = free_port()
            cmd = [sys.executable, "-m", "registry_cli", "--root", str(root), "serve", name]
            cmd += ["--port", str(port), "--load-interval", "0.5"]
            targets.append(
                Target(
                    label,
                    cmd,
                    "/health",
                    port,
                    "/predict",
                    json.dumps({"X": x}).encode(),
                    work / f"regctl-{name}.log",
                )
            )
        for t in targets:
            wait_ready(t.ready, t.proc, t.log)
            load(t.port, t.path, t.body, 200, args.threads)  # warm-up
        for _ in range(rounds):  # interleaved, so background noise hits every server alike
            for t in targets:
                t.round(per_round, args.threads)
    finally:
        for t in targets:
            stop(t.proc)
        shutil.rmtree(work, ignore_errors=True)

    rows = {t.label: t.summary() for t in targets}
    base = rows["mlflow models serve"]
    print(
        f"{rounds} interleaved rounds x {per_round} requests per server, {args.threads} "
        "client threads (keep-alive), one [12, 18] example per request"
    )
    print(f"  {'server':<38} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for label, r in rows.items():
        print(f"  {label:<38} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    ok = True
    for label, r in rows.items():
        if label == "mlflow models serve":
            continue
        tput = r["rps"] / base["rps"]
        p99 = r["p99_ms"] / base["p99_ms"]
        good = tput >= 1.0 and p99 < 1.0
        ok = ok and good
        print(
            f"  {label}: throughput {tput:.2f}x MLflow's (target >= 1.0x), "
            f"p99 {p99:.2f}x (target < 1.0x)  {'ok' if good else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
