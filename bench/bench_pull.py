"""Pull performance against curl, measured in one run (docs/performance.md, "Distribution").

A temporary registry gets a 1 GiB model and a 50 MiB model (``--small``: 128 MiB
and 8 MiB), both released, served by the real ``regctl serve-ftp`` on loopback.
Runs are interleaved (curl and each pull variant, in a rotating order, with
``sync`` in between) and medians compared.

1. One pull of the big bundle against ``curl -o file`` of the same bundle:
   - *download + verify*: connect, log in, read ``LATEST.json``, download the
     bundle to a temp file with inline sha256 and check size and sha256 (the
     pull's own code: ``Puller.open_transport``, ``resolve``, ``download_bundle``);
     the metric of issue 4;
   - *pull per file*: ``Puller.pull`` end to end: manifest, each payload file
     downloaded once with inline sha256 into the cache, rename (issue 13);
   - *pull --bundle*: the same with the bundle (also unpack, per-file check
     against the manifest, rename into the cache);
   - *regctl pull*: the CLI process end to end (also Python start-up).
2. 20 concurrent pulls of the mid bundle against 20 concurrent curls; aggregate
   throughput = 20 x size / wall time. Each puller has its own cache (20 client
   machines, no cache hits). Pullers are 20 processes started (and imported)
   before the clock starts, released together; as 20 cold ``regctl pull``
   processes too, for reference (on 2 cores their 20 Python start-ups count).

Usage: python bench/bench_pull.py [--small] [--runs N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.ftp.launch import ServeFtpProcess  # noqa: E402
from registry_cli.pull import Puller, Source  # noqa: E402

PASSWORD = "bench-pw"
MiB = 1 << 20


def make_file(path: Path, size: int) -> Path:
    """``size`` bytes of incompressible data (a random 16 MiB block repeated)."""
    block = os.urandom(min(size, 16 * MiB))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
    return path


def settle() -> None:
    """Flush dirty pages so one run's writeback does not slow the next."""
    os.sync()
    time.sleep(0.3)


def start_server(root: Path, log: Path) -> ServeFtpProcess:
    """The real ``regctl serve-ftp`` on a free loopback port."""
    server = ServeFtpProcess(
        root,
        "--user",
        "mlops",
        "--password-env",
        "BENCH_FTP_PW",
        "--max-cons-per-ip",
        "64",
        "--max-cons",
        "256",
        env={"BENCH_FTP_PW": PASSWORD},
        log=log,
    )
    try:
        return server.start()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def curl(port: int, relpath: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "-o",
            str(out),
            "--user",
            f"mlops:{PASSWORD}",
            f"ftp://127.0.0.1:{port}/{relpath}",
        ],
        check=True,
    )
    return time.perf_counter() - t0


def cli_pull(port: int, name: str, cache: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry_cli",
            "pull",
            name,
            "--from",
            f"ftp://mlops@127.0.0.1:{port}",
            "--password-env",
            "BENCH_FTP_PW",
            "--cache-dir",
            str(cache),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, BENCH_FTP_PW=PASSWORD),
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"regctl pull failed ({proc.returncode}): {proc.stderr}")
    if json.loads(proc.stdout)["cached"]:
        raise SystemExit("unexpected cache hit: the bench needs a fresh cache per pull")
    return elapsed


def download_verify(port: int, name: str, work: Path) -> float:
    """The pull's download + verify phase alone, timed from connect to checked sha256."""
    t0 = time.perf_counter()
    puller = Puller(
        Source(kind="ftp", host="127.0.0.1", port=port, user="mlops"),
        password=PASSWORD,
        cache_root=work,
    )
    transport = puller.open_transport()
    try:
        remote = puller.resolve(transport, "release", name, None)
        tmp = work / f".{name}.{os.getpid()}-{time.monotonic_ns()}.incomplete"
        puller.download_bundle(transport, "release", name, remote, tmp)
    finally:
        transport.close()
    elapsed = time.perf_counter() - t0
    tmp.unlink()
    return elapsed


def api_pull(port: int, name: str, cache: Path, bundle: bool = False) -> float:
    t0 = time.perf_counter()
    puller = Puller(
        Source(kind="ftp", host="127.0.0.1", port=port, user="mlops"),
        password=PASSWORD,
        cache_root=cache,
    )
    result = puller.pull(name, stage="release", bundle=bundle)
    assert not result.cached
    return time.perf_counter() - t0


def ensure_manifest_sha256(dist: Path) -> bool:
    """Give the served tree the ``manifest_sha256`` keys (SPEC §8) if its writer did not,
    so the per-file pull can be measured; True when the bench had to add them."""
    import hashlib

    added = False
    for doc_path in [*dist.rglob("index.json"), *dist.rglob("LATEST.json")]:
        doc = json.loads(doc_path.read_text())
        entries = [doc] if doc_path.name == "LATEST.json" else doc["versions"]
        for entry in entries:
            if "manifest_sha256" not in entry:
                manifest = doc_path.parent / "versions" / entry["version"] / "manifest.json"
                entry["manifest_sha256"] = hashlib.sha256(manifest.read_bytes()).hexdigest()
                added = True
        os.unlink(doc_path)
        doc_path.write_text(json.dumps(doc, indent=2))
    return added


def _worker(kind: str, port: int, name: str, folder: str, ready: Any, go: Any, done: Any) -> None:
    """A pre-started client (imports done): says ``ready``, waits for ``go``, pulls once."""
    ready.put(os.getpid())
    go.wait()
    try:
        if kind == "download_verify":
            download_verify(port, name, Path(folder))
        else:
            api_pull(port, name, Path(folder), bundle=kind == "bundle")
        done.put("ok")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        done.put(repr(exc))


def prestarted(kind: str, port: int, name: str, work: Path, n: int) -> float:
    """Wall time of ``n`` pre-started processes pulling at once."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    ready = ctx.Queue()
    done = ctx.Queue()
    folders = [work / f"{kind}-{i}" for i in range(n)]
    for f in folders:
        f.mkdir(parents=True)
    procs = [
        ctx.Process(target=_worker, args=(kind, port, name, str(f), ready, go, done))
        for f in folders
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=300)  # every worker has started and imported regctl
    settle()
    t0 = time.perf_counter()
    go.set()
    results = [done.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - t0
    for proc in procs:
        proc.join()
    for f in folders:
        shutil.rmtree(f)
    bad = [r for r in results if r != "ok"]
    if bad:
        raise SystemExit(f"{len(bad)} of {n} pulls failed: {bad[0]}")
    return elapsed


def single(port: int, work: Path, size: int, runs: int) -> dict[str, list[float]]:
    rel = "release/big/versions/v1/bundle.tar.gz"

    def run_curl(i: int) -> float:
        out = work / "curl.out"
        elapsed = curl(port, rel, out)
        out.unlink()
        return elapsed

    def run_pull(kind: str, i: int) -> float:
        cache = work / f"{kind}-cache-{i}"
        if kind == "cli":
            elapsed = cli_pull(port, "big", cache)
        else:
            elapsed = api_pull(port, "big", cache, bundle=kind == "bundle")
        shutil.rmtree(cache)
        return elapsed

    steps = {
        "curl": run_curl,
        "download_verify": lambda i: download_verify(port, "big", work),
        "api": lambda i: run_pull("api", i),
        "bundle": lambda i: run_pull("bundle", i),
        "cli": lambda i: run_pull("cli", i),
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    order = list(steps)
    for i in range(runs):
        for key in order[i % len(order) :] + order[: i % len(order)]:  # rotate: no fixed order
            settle()
            times[key].append(steps[key](i))
        print(
            f"  run {i + 1}: curl {times['curl'][-1]:.2f} s, download+verify "
            f"{times['download_verify'][-1]:.2f} s, pull per file {times['api'][-1]:.2f} s,"
            f" pull --bundle {times['bundle'][-1]:.2f} s, regctl pull {times['cli'][-1]:.2f} s",
            flush=True,
        )
    return times


def concurrent(port: int, work: Path, size: int, n: int, runs: int) -> dict[str, list[float]]:
    rel = "release/mid/versions/v1/bundle.tar.gz"
    out: dict[str, list[float]] = {
        "curl": [],
        "download_verify": [],
        "api": [],
        "bundle": [],
        "cli": [],
    }
    for r in range(runs):
        settle()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda i: curl(port, rel, work / f"c{i}.out"), range(n)))
        out["curl"].append(n * size / (time.perf_counter() - t0))
        for i in range(n):
            (work / f"c{i}.out").unlink()
        out["download_verify"].append(
            n * size / prestarted("download_verify", port, "mid", work, n)
        )
        out["api"].append(n * size / prestarted("api", port, "mid", work, n))
        out["bundle"].append(n * size / prestarted("bundle", port, "mid", work, n))
        settle()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda i, r=r: cli_pull(port, "mid", work / f"cc{r}-{i}"), range(n)))
        out["cli"].append(n * size / (time.perf_counter() - t0))
        for d in work.glob("cc*-*"):
            shutil.rmtree(d)
        print(
            f"  run {r + 1}: {n} curls {out['curl'][-1] / MiB:.0f} MiB/s; {n} pre-started "
            f"clients: download+verify {out['download_verify'][-1] / MiB:.0f} MiB/s, pull per "
            f"file {out['api'][-1] / MiB:.0f} MiB/s, pull --bundle "
            f"{out['bundle'][-1] / MiB:.0f} MiB/s; {n} cold regctl pull "
            f"{out['cli'][-1] / MiB:.0f} MiB/s",
            flush=True,
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="128 MiB and 8 MiB: a quick run")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs per measurement")
    ap.add_argument("--concurrency", type=int, default=20, help="concurrent pulls")
    ap.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    args = ap.parse_args()
    if shutil.which("curl") is None:
        print("curl is not installed; skipping")
        return 0
    big = (128 if args.small else 1024) * MiB
    mid = (8 if args.small else 50) * MiB
    base = Path(tempfile.mkdtemp(prefix="regctl-bench-pull-", dir=args.dir))
    try:
        root = base / "registry"
        reg = ModelRegistry(root, actor="bench")
        print(
            f"publishing {big // MiB} MiB and {mid // MiB} MiB models into {root} ...", flush=True
        )
        for name, size in (("big", big), ("mid", mid)):
            src = make_file(base / "src" / name / "model.pt", size)
            reg.publish(name, [src])
            reg.promote(name)
            shutil.rmtree(base / "src" / name)
        if ensure_manifest_sha256(root / "dist"):
            print("(the served tree got manifest_sha256 from the bench: its writer lacks it yet)")
        bundle_size = reg.get("big:v1").bundle["size"]
        mid_size = reg.get("mid:v1").bundle["size"]
        work = base / "work"
        work.mkdir()
        server = start_server(root, base / "serve-ftp.log")
        try:
            print(
                f"1. one pull of a {bundle_size / MiB:.0f} MiB bundle vs curl -o file "
                f"({args.runs} interleaved runs)",
                flush=True,
            )
            s = single(server.port, work, bundle_size, args.runs)
            print(
                f"2. {args.concurrency} concurrent pulls of a {mid_size / MiB:.0f} MiB bundle "
                f"vs {args.concurrency} concurrent curls",
                flush=True,
            )
            c = concurrent(server.port, work, mid_size, args.concurrency, max(1, args.runs - 1))
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = statistics.median
    curl_s = med(s["curl"])
    rows = [
        ("curl -o file", curl_s, None, ""),
        (
            "pull: download + verify",
            med(s["download_verify"]),
            med(s["download_verify"]) / curl_s,
            "target <= 1.5",
        ),
        (
            "pull per file, end to end",
            med(s["api"]),
            med(s["api"]) / curl_s,
            "target <= 1.3: in the cache, verified",
        ),
        (
            "pull --bundle, end to end",
            med(s["bundle"]),
            med(s["bundle"]) / curl_s,
            "+ unpack, per-file check",
        ),
        (
            "regctl pull process, end to end",
            med(s["cli"]),
            med(s["cli"]) / curl_s,
            "+ Python start-up",
        ),
    ]
    print(f"\nresults: one {bundle_size / MiB:.0f} MiB bundle (median of {args.runs})")
    for label, secs, ratio, note in rows:
        extra = (
            f"  ratio {ratio:.2f}  ({note})"
            if ratio is not None
            else f"  ({bundle_size / secs / MiB:.0f} MiB/s)"
        )
        print(f"  {label:34} {secs:6.2f} s{extra}")
    n = args.concurrency
    curl_bps = med(c["curl"])
    print(
        f"results: {n} concurrent pulls of a {mid_size / MiB:.0f} MiB bundle, aggregate "
        f"(median of {len(c['curl'])})"
    )
    for label, key, note in (
        (f"{n} curls", "curl", ""),
        (f"{n} clients: download + verify", "download_verify", "bundle, no unpack"),
        (f"{n} clients: pull per file", "api", "target >= 0.6"),
        (f"{n} clients: pull --bundle", "bundle", "+ unpack, per-file check"),
        (f"{n} cold regctl pull processes", "cli", "+ 20 Python start-ups"),
    ):
        ratio = med(c[key]) / curl_bps
        extra = f"  ratio {ratio:.2f}  ({note})" if key != "curl" else ""
        print(f"  {label:34} {med(c[key]) / MiB:6.0f} MiB/s{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
