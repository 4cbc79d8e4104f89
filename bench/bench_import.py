"""regctl import from MLflow against MLflow's own client downloading the same artifacts.

A real ``mlflow server`` (SQLite backend, proxied artifact store, one worker) on
loopback gets one registered model with 200 small versions (``--small``: 50),
each from its own run (a metric, a param, a 4 KiB artifact). Then, in the same
run, interleaved rounds of:

- *mlflow client*: ``mlflow.artifacts.download_artifacts("models:/NAME/N")`` for
  every version, one after the other (what a migration script would do);
- *regctl import*: ``read_source`` + ``make_plan`` + ``execute`` in-process into
  a fresh registry: list the versions, look up each version and its run,
  download, hash, bundle, publish with its number, settle aliases and stages.

Both run in this process with mlflow already imported; medians are compared
(target: regctl ≤ 1.5x the client). One cold ``regctl import`` CLI process is
timed too, for reference (it adds Python and mlflow start-up).

Usage: python bench/bench_import.py [--small] [--rounds N] [--versions N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.importers import SourceSpec, execute, make_plan, read_source  # noqa: E402
from tests.mlflow_server import MlflowServer  # noqa: E402

TARGET = 1.5


def populate(uri: str, versions: int, work: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")
    name = f"bench-import-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    for n in range(1, versions + 1):
        rid = client.create_run(exp).info.run_id
        client.log_metric(rid, "accuracy", 0.5 + n / (4 * versions))
        client.log_param(rid, "seed", str(n))
        art = work / f"art{n}" / "weights"
        art.mkdir(parents=True)
        (art / "best.pt").write_bytes(os.urandom(4096))
        client.log_artifacts(rid, str(art), artifact_path="weights")
        client.create_model_version(name, f"runs:/{rid}/weights", run_id=rid)
    client.set_registered_model_alias(name, "champion", str(versions - 1))
    client.set_registered_model_alias(name, "candidate", str(versions))
    return name


def mlflow_client_round(uri: str, name: str, versions: int, dest: Path) -> float:
    import mlflow

    dest.mkdir()
    start = time.perf_counter()
    for n in range(1, versions + 1):
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{n}",
            dst_path=str(dest / str(n)),
            tracking_uri=uri,
            registry_uri=uri,
        )
    return time.perf_counter() - start


def regctl_round(uri: str, name: str, versions: int, root: Path) -> float:
    reg = ModelRegistry(root, actor="bench")
    start = time.perf_counter()
    found = read_source(SourceSpec(source="mlflow", tracking_uri=uri, models=[name]), reg.config)
    try:
        report = execute(reg, make_plan(reg, found))
    finally:
        found.close()
    elapsed = time.perf_counter() - start
    assert report.imported == versions, report
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="50 versions, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--versions", type=int, default=None)
    args = parser.parse_args()
    versions = args.versions or (50 if args.small else 200)
    rounds = args.rounds or 3
    base = Path(tempfile.mkdtemp(prefix="bench-import-"))
    server = MlflowServer(base)
    try:
        uri = server.start()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
    try:
        import mlflow  # noqa: F401 - warm, as for both contenders

        t0 = time.perf_counter()
        name = populate(uri, versions, base / "src")
        took = time.perf_counter() - t0
        print(f"mlflow server {uri}: {versions} versions of {name} in {took:.1f} s")
        client_times, regctl_times = [], []
        for r in range(rounds):
            order = ("client", "regctl") if r % 2 == 0 else ("regctl", "client")
            for who in order:
                subprocess.run(["sync"], check=False)
                if who == "client":
                    t = mlflow_client_round(uri, name, versions, base / f"dl{r}")
                    client_times.append(t)
                else:
                    t = regctl_round(uri, name, versions, base / f"reg{r}")
                    regctl_times.append(t)
                print(f"  round {r + 1} {who:<7} {t:6.2f} s", flush=True)
        cold_root = base / "cold"
        env = dict(os.environ, REGCTL_ACTOR="bench")
        start = time.perf_counter()
        cold = subprocess.run(
            [
                sys.executable,
                "-m",
                "registry_cli",
                "--root",
                str(cold_root),
                "import",
                "mlflow",
                "--tracking-uri",
                uri,
                "--model",
                name,
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        cold_s = time.perf_counter() - start
        if cold.returncode != 0:
            print(cold.stderr)
            return 1
        client_med = statistics.median(client_times)
        regctl_med = statistics.median(regctl_times)
        ratio = regctl_med / client_med
        print(
            f"\n{versions} versions: mlflow client download {client_med:.2f} s "
            f"({1000 * client_med / versions:.1f} ms/version), regctl import {regctl_med:.2f} s "
            f"({1000 * regctl_med / versions:.1f} ms/version): ratio {ratio:.2f}x "
            f"(target <= {TARGET}x); cold CLI process {cold_s:.2f} s"
        )
        return 0 if ratio <= TARGET else 1
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
