"""The registry in object storage (issue 11), against moto's S3 server on loopback.

    python bench/bench_s3.py            # full: 256 MiB publish, 10,000 versions
    python bench/bench_s3.py --small    # quick: 64 MiB publish, 1,000 versions

Targets:
  publish   256 MiB file, whole `regctl publish` process     <= 2.0x boto3 upload_file + sha256
  scale     `regctl resolve`/`show` with 10,000 versions     <= 1.2x the same with 10
  requests  per command, counted with a botocore event hook (resolve, show, promote, publish):
            a handful each, the same at 10 and at 10,000 versions

moto runs in its own process (``python -m moto.server``), so server and client
use the two cores as a remote store would. Needs the ``s3`` and ``dev`` extras.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CREDS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
RESULTS: list[tuple[str, float, str, bool]] = []


def report(name: str, ratio: float, target: float, detail: str) -> None:
    ok = ratio <= target
    RESULTS.append((name, ratio, detail, ok))
    print(
        f"  {name:<42} {ratio:5.2f}x  (target <= {target}x)  {'ok' if ok else 'MISSED'}  {detail}",
        flush=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Any:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1",
         "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("moto server did not start")
            time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **{
        "aws_access_key_id": "bench", "aws_secret_access_key": "bench"})  # fmt: skip


def env_for(endpoint: str) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", REGCTL_ACTOR="bench", REGCTL_S3_ENDPOINT_URL=endpoint)
    env.update(CREDS)
    return env


def regctl(root: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "registry_cli", "--root", root, *args]


def timed(cmd: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------ publish
def bench_publish(endpoint: str, work: Path, size_mb: int, repeats: int) -> None:
    print(f"publish of {size_mb} MiB (median of {repeats})", flush=True)
    src = work / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(1 << 20))
    s3 = client(endpoint)
    env = env_for(endpoint)
    base, ours = [], []
    for i in range(repeats):
        bucket = f"bench-publish-{i}"
        s3.create_bucket(Bucket=bucket)
        t0 = time.perf_counter()
        s3.upload_file(str(src), bucket, "baseline/big.bin")
        digest = hashlib.sha256()
        with open(src, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        base.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(
            regctl(f"s3://{bucket}/reg", "publish", "m", str(src)),
            env=env,
            check=True,
            capture_output=True,
        )
        ours.append(time.perf_counter() - t0)
    b, o = statistics.median(base), statistics.median(ours)
    report(f"publish {size_mb} MiB vs upload_file + sha256", o / b, 2.0, f"{o:.2f} s vs {b:.2f} s")


# ------------------------------------------------------------------ scale
def make_model(endpoint: str, bucket: str, count: int, work: Path) -> str:
    """A model with ``count`` versions: 10 published for real, the rest made of the same
    objects a publish leaves (under models/ and dist/dev/, written in parallel here to
    save time) and listed in the state, with dist/dev/m/index.json listing them all."""
    from registry_cli import ModelRegistry
    from registry_cli.core.state import ModelState, dump_state_text, load_state_text

    s3 = client(endpoint)
    s3.create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/reg"
    os.environ.update(CREDS, REGCTL_S3_ENDPOINT_URL=endpoint)
    reg = ModelRegistry(root)
    src = work / "w.pt"
    src.write_bytes(os.urandom(4096))
    for _ in range(min(count, 10)):
        reg.publish("m", [src], metrics={"acc": 0.5})
    if count <= 10:
        return root

    def get(key: str) -> bytes:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    manifest = json.loads(get("reg/models/m/v10/manifest.json"))
    vyaml = get("reg/models/m/v10/version.yaml")

    def put(v: int) -> None:
        mdoc = json.dumps(dict(manifest, version=f"v{v}")).encode()
        ydoc = vyaml.replace(b"v10", f"v{v}".encode())
        for top in (f"reg/models/m/v{v}", f"reg/dist/dev/m/versions/v{v}"):
            s3.put_object(Bucket=bucket, Key=f"{top}/manifest.json", Body=mdoc)
            for rel in ("bundle.tar.gz", "payload/w.pt"):
                source = {"Bucket": bucket, "Key": f"reg/models/m/v10/{rel}"}
                s3.copy_object(Bucket=bucket, Key=f"{top}/{rel}", CopySource=source)
        s3.put_object(Bucket=bucket, Key=f"reg/models/m/v{v}/version.yaml", Body=ydoc)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(11, count + 1)))
    key = "reg/models/m/model.yaml"
    state = ModelState.from_doc(load_state_text(get(key)))
    for v in range(11, count + 1):
        state.versions.add(v)
    state.next_version = count + 1
    state.latest["dev"] = count
    state.aliases["candidate"] = count
    s3.put_object(Bucket=bucket, Key=key, Body=dump_state_text(state.to_doc()).encode())
    reg = ModelRegistry(root)
    docs = reg.served.stage_documents(state, "dev", reg.served.expected(state, "dev"))
    for fname, data in docs.items():
        assert data is not None
        s3.put_object(Bucket=bucket, Key=f"reg/dist/dev/m/{fname}", Body=data)
    return root


def count_requests(root: str, action: Any) -> Counter[str]:
    """Requests one registry call makes (a fresh registry, as one CLI process has)."""
    from registry_cli import ModelRegistry
    from registry_cli.storage import s3_client

    s3_client.forget_probes()
    s3_client._CLIENTS.clear()
    reg = ModelRegistry(root)
    calls: Counter[str] = Counter()
    reg.store.client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.s3.*", lambda model, **kw: calls.update([model.name])
    )
    action(reg)
    return calls


def bench_scale(endpoint: str, work: Path, many: int, runs: int) -> None:
    print(f"scale: 10 vs {many:,} versions (median of {runs} processes)", flush=True)
    env = env_for(endpoint)
    few_root = make_model(endpoint, "bench-few", 10, work)
    many_root = make_model(endpoint, "bench-many", many, work)
    for key, args in (("resolve", ["resolve", "m"]), ("show", ["show", "m", "--json"])):
        a = timed(regctl(few_root, *args), env, runs)
        b = timed(regctl(many_root, *args), env, runs)
        report(f"{key} with {many:,} vs 10 versions", b / a, 1.2,
               f"{b * 1000:.0f} ms vs {a * 1000:.0f} ms")  # fmt: skip
    print("requests per command (10 versions | many versions):", flush=True)
    src = work / "w2.pt"
    src.write_bytes(b"x" * 1000)
    actions = {
        "resolve": lambda r: r.get("m", with_bundle=False),
        "show": lambda r: r.get("m"),
        "promote": lambda r: r.promote("m"),
        "alias set": lambda r: r.set_alias("m", "canary", "v3"),
        "publish (small file)": lambda r: r.publish("m", [src]),
    }
    for name, action in actions.items():
        few = count_requests(few_root, action)
        lots = count_requests(many_root, action)
        print(f"  {name:<22} {sum(few.values()):3d} | {sum(lots.values()):3d}   "
              f"{dict(sorted(lots.items()))}", flush=True)  # fmt: skip
        RESULTS.append((f"requests {name}", 0, "", sum(lots.values()) == sum(few.values())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="quick run with smaller sizes")
    parser.add_argument("--runs", type=int, default=7, help="processes per latency timing")
    parser.add_argument("--only", choices=["publish", "scale"], help="one part only")
    args = parser.parse_args()
    size_mb, many, repeats = (64, 1000, 2) if args.small else (256, 10_000, 3)
    with moto_server() as endpoint, tempfile.TemporaryDirectory(prefix="regctl-bench-s3-") as d:
        work = Path(d)
        if args.only in (None, "publish"):
            bench_publish(endpoint, work, size_mb, repeats)
        if args.only in (None, "scale"):
            bench_scale(endpoint, work, many, args.runs)
    missed = [r for r in RESULTS if not r[3]]
    print(f"\n{len(RESULTS) - len(missed)} of {len(RESULTS)} targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
