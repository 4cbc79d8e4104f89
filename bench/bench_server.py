"""The registry server (issue 10): `regctl serve-registry` against local use and MLflow.

    python bench/bench_server.py            # 1 GiB upload, 10,000-version model
    python bench/bench_server.py --small    # 256 MiB upload, 2,000-version model

1. Publish one big file through the API (the remote CLI on this machine) against the
   local ``regctl publish`` of the same file (best of 3 each, in alternating order,
   each after ``sync``), with the server's
   resident memory sampled every 20 ms during the upload.
   Targets: ratio <= 1.5, server RSS < 150 MiB.
2. Read routes with 4 keep-alive client threads: regctl's ``/api/v1/resolve`` and one
   version's ``show`` against a ``mlflow server`` (SQLite backend, one worker) answering
   get-model-version-by-alias, same client, same run. Target: >= 5x MLflow's throughput.
3. Latency (one keep-alive client, median) of resolve + show on a model of 10,000
   versions against a model of 10. Target: ratio <= 1.2. Publishing 10,000 versions one
   by one takes long (every publish rewrites the stage's index.json), so the big model
   is built by publishing v1 and then laying v2..vN out as copies of v1 (hard links,
   manifest and state renumbered), after which ``regctl verify`` must pass.
4. ``regctl --remote URL resolve`` whole-process time against local ``regctl resolve``
   (median of 15). Target: ratio <= 1.5.
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

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.core.tokens import Tokens  # noqa: E402
from registry_cli.server.launch import ServeRegistryProcess  # noqa: E402

ENV = dict(os.environ, NO_COLOR="1", REGCTL_ACTOR="bench", MLFLOW_TRACKING_URI="")
MiB = 1024 * 1024


def regctl(*args: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "registry_cli", *args],
        check=True,
        env=env or ENV,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def admin_token(root: Path) -> str:
    reg = ModelRegistry(root)
    reg.init()
    return Tokens(reg.store, reg.states, "bench").create("bench", ["admin"]).secret


# ----------------------------------------------------------------- 1. big publish
def bench_publish(work: Path, size: int) -> dict[str, float]:
    big = work / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(os.urandom(MiB))
    local_root, server_root = work / "local", work / "served"
    token = admin_token(server_root)
    env = dict(ENV, REGCTL_TOKEN=token)
    local_times, remote_times, peak = [], [], 0.0
    with ServeRegistryProcess(server_root, log=work / "publish-server.log", env=ENV) as srv:
        assert srv.proc is not None
        baseline = rss_mib(srv.proc.pid)

        def local_run() -> None:
            os.sync()  # each run starts with no dirty pages left by the one before
            local_times.append(regctl("--root", str(local_root), "publish", "big/file", str(big)))

        def remote_run() -> None:
            os.sync()
            done = threading.Event()

            def sample(pid: int = srv.proc.pid) -> None:
                while not done.is_set():
                    samples.append(rss_mib(pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                remote_times.append(
                    regctl("--remote", srv.url, "publish", "big/file", str(big), env=env)
                )
            finally:
                done.set()
                sampler.join()

        samples: list[float] = []
        for order in ((local_run, remote_run), (remote_run, local_run), (local_run, remote_run)):
            for run in order:
                run()
        peak = max([peak, *samples])
    big.unlink()
    local, remote = min(local_times), min(remote_times)
    print(
        f"publish {size // MiB} MiB: local {local:.2f} s, through the API {remote:.2f} s, "
        f"ratio {remote / local:.2f} (target <= 1.5); server RSS {baseline:.0f} MiB idle, "
        f"{peak:.0f} MiB peak during upload (target < 150)"
    )
    return {"publish_ratio": remote / local, "rss_peak_mib": peak}


# ----------------------------------------------------------------- 2. read throughput
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(work / "mlflow.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
            "--artifacts-destination", str(work / "mlartifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=work,
        env=dict(ENV, HOME=str(work)), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((work / "mlflow.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                if reply.status == 200:
                    return proc, uri
        except OSError:
            time.sleep(0.5)
    stop_group(proc)
    raise RuntimeError("mlflow server did not start within 180 s")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def throughput(
    host: str, port: int, paths: list[str], headers: dict[str, str], seconds: float
) -> float:
    """Requests per second of 4 keep-alive threads cycling through ``paths``."""
    counts = [0] * 4
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        n = 0
        while time.monotonic() < stop:
            conn.request("GET", paths[n % len(paths)], headers=headers)
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status} for {paths[n % len(paths)]}")
            n += 1
        counts[i] = n
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def bench_reads(work: Path, seconds: float) -> dict[str, float]:
    root = work / "reads"
    token = admin_token(root)
    reg = ModelRegistry(root)
    weights = work / "w.pt"
    weights.write_bytes(os.urandom(4096))
    for _ in range(10):
        reg.publish("team/ppe", [weights])
    reg.promote("team/ppe", version=5)
    mlflow_proc, mlflow_uri = start_mlflow(work)
    try:
        import mlflow

        client = mlflow.MlflowClient(mlflow_uri)
        client.create_registered_model("bench-model")
        run = client.create_run(client.create_experiment("bench"))
        version = client.create_model_version(
            "bench-model", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
        )
        client.set_registered_model_alias("bench-model", "champion", version.version)
        ml_port = int(mlflow_uri.rsplit(":", 1)[1])
        ml_rps = throughput(
            "127.0.0.1",
            ml_port,
            ["/api/2.0/mlflow/registered-models/alias?name=bench-model&alias=champion"],
            {},
            seconds,
        )
    finally:
        stop_group(mlflow_proc)
    with ServeRegistryProcess(root, log=work / "reads-server.log", env=ENV) as srv:
        paths = ["/api/v1/resolve?ref=team/ppe@champion", "/api/v1/models/team/ppe/-/versions/v5"]
        auth = {"Authorization": f"Bearer {token}"}
        rg_rps = throughput("127.0.0.1", srv.port, paths, auth, seconds)
        url = srv.url
        local = [regctl("--root", str(root), "resolve", "team/ppe@champion") for _ in range(15)]
        env = dict(ENV, REGCTL_TOKEN=token)
        remote = [
            regctl("--remote", url, "resolve", "team/ppe@champion", env=env) for _ in range(15)
        ]
    ratio = rg_rps / ml_rps
    print(
        f"read routes, 4 keep-alive threads: regctl {rg_rps:.0f} req/s, MLflow "
        f"get-model-version-by-alias {ml_rps:.0f} req/s, ratio {ratio:.1f}x (target >= 5)"
    )
    lmed, rmed = statistics.median(local), statistics.median(remote)
    print(
        f"resolve, whole process: local {lmed * 1000:.0f} ms, --remote {rmed * 1000:.0f} ms, "
        f"ratio {rmed / lmed:.2f} (target <= 1.5)"
    )
    return {"read_ratio": ratio, "remote_resolve_ratio": rmed / lmed}


# ----------------------------------------------------------------- 3. latency vs versions
def lay_out_versions(reg: ModelRegistry, name: str, count: int) -> None:
    """v2..v``count`` as renumbered copies of v1 (see the module docstring)."""
    model = reg.root / "models" / name
    v1 = model / "v1"
    manifest = json.loads((v1 / "manifest.json").read_text())
    version_yaml = (v1 / "version.yaml").read_text()
    for n in range(2, count + 1):
        target = model / f"v{n}"
        shutil.copytree(v1, target, copy_function=os.link)
        for doc in ("manifest.json", "version.yaml"):
            (target / doc).unlink()
        (target / "manifest.json").write_text(
            json.dumps({**manifest, "version": f"v{n}"}, indent=2) + "\n"
        )
        (target / "version.yaml").write_text(
            version_yaml.replace("\nversion: v1\n", f"\nversion: v{n}\n")
        )
    state = json.loads((model / "model.yaml").read_text())
    state.update(
        next_version=count + 1,
        versions=f"1-{count}",
        latest={reg.stages[0]: f"v{count}"},
        aliases={"candidate": f"v{count}"},
    )
    (model / "model.yaml").write_text(json.dumps(state, indent=2) + "\n")
    reg.rebuild_dist()


def latency(port: int, paths: list[str], headers: dict[str, str], n: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for i in range(n):
        started = time.perf_counter()
        conn.request("GET", paths[i % len(paths)], headers=headers)
        reply = conn.getresponse()
        reply.read()
        times.append(time.perf_counter() - started)
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}")
    conn.close()
    return statistics.median(times)


def bench_many_versions(work: Path, count: int) -> dict[str, float]:
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else work
    folder = Path(tempfile.mkdtemp(prefix="regctl-bench-", dir=base))
    try:
        root = folder / "registry"
        token = admin_token(root)
        reg = ModelRegistry(root)
        weights = folder / "w.pt"
        weights.write_bytes(os.urandom(4096))
        for _ in range(10):
            reg.publish("lat/ten", [weights])
        reg.publish("lat/many", [weights])
        lay_out_versions(reg, "lat/many", count)
        for name, v in (("lat/ten", 5), ("lat/many", count // 2)):
            reg.promote(name, version=v)
        report = reg.verify("lat/many")
        if not report.ok:
            raise RuntimeError(f"the laid-out model does not verify: {report.problems[:3]}")
        auth = {"Authorization": f"Bearer {token}"}
        with ServeRegistryProcess(root, log=folder / "server.log", env=ENV) as srv:
            results = {}
            for name, v in (("lat/ten", 7), ("lat/many", count - 3)):
                paths = [
                    f"/api/v1/resolve?ref={name}@champion",
                    f"/api/v1/models/{name}/-/versions/v{v}",
                ]
                latency(srv.port, paths, auth, 50)  # warm up
                results[name] = latency(srv.port, paths, auth, 600)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ratio = results["lat/many"] / results["lat/ten"]
    print(
        f"latency of resolve + show: {count} versions {results['lat/many'] * 1000:.2f} ms, "
        f"10 versions {results['lat/ten'] * 1000:.2f} ms, ratio {ratio:.2f} (target <= 1.2)"
    )
    return {"latency_ratio": ratio}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smaller sizes, for a quick run")
    args = parser.parse_args()
    size = (256 if args.small else 1024) * MiB
    count = 2000 if args.small else 10_000
    work = Path(tempfile.mkdtemp(prefix="regctl-bench-server-"))
    try:
        figures: dict[str, float] = {}
        figures.update(bench_publish(work, size))
        figures.update(bench_reads(work, 3.0 if args.small else 6.0))
        figures.update(bench_many_versions(work, count))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = (
        figures["publish_ratio"] <= 1.5
        and figures["rss_peak_mib"] < 150
        and figures["read_ratio"] >= 5
        and figures["latency_ratio"] <= 1.2
        and figures["remote_resolve_ratio"] <= 1.5
    )
    print("all targets met" if ok else "some targets missed (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
