"""``MlflowClient.get_model_version_by_alias`` against regctl vs against ``mlflow server``.

A real ``mlflow server`` (SQLite backend, one worker) and a real ``regctl
serve-registry`` on loopback each hold one model with a few versions and a
``champion``. The same MLflow client (this process, mlflow imported once, one
``MlflowClient`` per registry) then calls ``get_model_version_by_alias(NAME,
"champion")`` in interleaved rounds of ``--calls`` calls each; the medians of the
per-round throughputs are compared (regctl / mlflow, printed, never asserted;
the issue's target is >= 5x).

Usage: python bench/bench_mlflow_registry.py [--rounds N] [--calls N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.core.tokens import Tokens  # noqa: E402
from registry_cli.server.launch import ServeRegistryProcess  # noqa: E402
from tests.mlflow_server import MlflowServer  # noqa: E402

TARGET = 5.0
VERSIONS = 5


def populate_mlflow(uri: str, work: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")
    name = f"bench-alias-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    for n in range(VERSIONS):
        rid = client.create_run(exp).info.run_id
        art = work / f"art{n}"
        art.mkdir()
        (art / "w.bin").write_bytes(os.urandom(1024))
        client.log_artifacts(rid, str(art), artifact_path="weights")
        client.create_model_version(name, f"runs:/{rid}/weights", run_id=rid)
    client.set_registered_model_alias(name, "champion", str(VERSIONS))
    return name


def populate_regctl(root: Path, work: Path) -> tuple[str, str]:
    reg = ModelRegistry(root)
    reg.init()
    token = Tokens(reg.store, reg.states, "bench").create("bench", ["read"]).secret
    name = "bench-alias"
    for n in range(VERSIONS):
        art = work / f"r{n}"
        art.mkdir()
        (art / "w.bin").write_bytes(os.urandom(1024))
        reg.publish(name, [art])
    reg.promote(name, version=VERSIONS)
    return name, token


def rate(client, name: str, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        client.get_model_version_by_alias(name, "champion")
    return calls / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "mlflow").mkdir()
        (base / "work").mkdir()
        name_r, token = populate_regctl(base / "registry", base / "work")
        env = {"HOME": str(base), "REGCTL_ACTOR": "bench"}
        with (
            MlflowServer(base / "mlflow") as mlflow_uri,
            ServeRegistryProcess(base / "registry", log=base / "regctl.log", env=env) as srv,
        ):
            name_m = populate_mlflow(mlflow_uri, base / "work")
            os.environ["MLFLOW_TRACKING_TOKEN"] = token  # mlflow server ignores it
            from mlflow import MlflowClient

            ours = MlflowClient(tracking_uri=mlflow_uri, registry_uri=srv.url)
            theirs = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
            assert ours.get_model_version_by_alias(name_r, "champion").version == str(VERSIONS)
            assert theirs.get_model_version_by_alias(name_m, "champion").version == str(VERSIONS)
            rate(ours, name_r, 20), rate(theirs, name_m, 20)  # warm up both
            regctl_rates, mlflow_rates = [], []
            for _ in range(args.rounds):
                regctl_rates.append(rate(ours, name_r, args.calls))
                mlflow_rates.append(rate(theirs, name_m, args.calls))
    r, m = statistics.median(regctl_rates), statistics.median(mlflow_rates)
    print(f"get_model_version_by_alias through MlflowClient, {args.rounds} interleaved rounds "
          f"of {args.calls} calls")  # fmt: skip
    print(
        f"  regctl serve-registry: {r:8.1f} calls/s (rounds: "
        + ", ".join(f"{x:.0f}" for x in regctl_rates)
        + ")"
    )
    print(
        f"  mlflow server:         {m:8.1f} calls/s (rounds: "
        + ", ".join(f"{x:.0f}" for x in mlflow_rates)
        + ")"
    )
    print(f"  ratio regctl/mlflow:   {r / m:8.2f}x (target >= {TARGET:g}x)")


if __name__ == "__main__":
    main()
