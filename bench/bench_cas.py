"""Content-addressed storage (issue 21): publish into blobs, dedup, stored bytes,
remote publish through serve-registry, S3 publish. Each figure is a ratio against a
baseline measured in the same run, interleaved (baseline, ours, baseline, ours...),
medians reported.

    python bench/bench_cas.py                 # 1 GiB (S3: 256 MiB), 3 rounds
    python bench/bench_cas.py --size 256      # MiB of new bytes (S3 uses a quarter)
    python bench/bench_cas.py --only publish,dedup,du

Targets:
  publish   new bytes, whole `regctl publish`       <= 1.2x  cp + openssl dgst -sha256
  dedup     the same bytes again (another model)    <= 1.2x  openssl dgst -sha256
  du        stored bytes after a publish / new bytes <= 1.05x
  remote    `regctl --remote publish` via serve-registry <= 1.3x local publish
  s3        publish to moto's S3 server             <= 1.5x  boto3 upload_file + sha256

Needs openssl and cp on the PATH; the S3 part needs the ``s3`` and ``dev`` extras.
The package's bytecode is compiled once first, as installing it does: otherwise,
under PYTHONDONTWRITEBYTECODE, every `regctl` run would compile its modules again
(~0.05-0.1 s) — a cost of this checkout, not of the command.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

RESULTS: list[tuple[str, float, bool]] = []
PARTS = ("publish", "dedup", "du", "remote", "s3")


def report(name: str, ratio: float, target: float, detail: str) -> None:
    ok = ratio <= target
    RESULTS.append((name, ratio, ok))
    print(
        f"  {name:<44} {ratio:5.2f}x  (target <= {target}x)  {'ok' if ok else 'MISSED'}  {detail}",
        flush=True,
    )


def env() -> dict[str, str]:
    return dict(os.environ, NO_COLOR="1", REGCTL_ACTOR="bench", PYTHONPATH=str(REPO))


def regctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "registry_cli", *args]


def run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, capture_output=True, env=env(), **kw)  # type: ignore[call-overload]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def drop_written(path: Path) -> None:
    """Flush what earlier rounds wrote, so a round does not pay for another's writeback."""
    os.sync()
    with contextlib.suppress(OSError):
        shutil.rmtree(path)


def make_source(path: Path, size_mb: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(1 << 20))


def interleaved(rounds: int, base: Callable[[int], float], ours: Callable[[int], float]):
    b, o = [], []
    for i in range(rounds):
        b.append(base(i))
        o.append(ours(i))
    return statistics.median(b), statistics.median(o)


# ------------------------------------------------------------------ folder root
def bench_folder(work: Path, src: Path, size_mb: int, rounds: int, parts: set[str]) -> None:
    print(f"folder root, {size_mb} MiB of new bytes (median of {rounds})", flush=True)
    sizes_note = f"{size_mb} MiB"

    def cp_and_dgst(i: int) -> float:
        dst = work / f"cp-{i}"
        drop_written(dst)
        dst.mkdir()

        def go() -> None:
            run(["cp", str(src), str(dst / src.name)])
            run(["openssl", "dgst", "-sha256", str(dst / src.name)])

        took = timed(go)
        drop_written(dst)
        return took

    def publish_new(i: int) -> float:
        root = work / f"root-{i}"
        drop_written(root)
        run(regctl("--root", str(root), "init"))
        took = timed(lambda: run(regctl("--root", str(root), "publish", "m", str(src))))
        if i == 0 and "du" in parts:
            out = subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True)
            stored = int(out.stdout.split()[0])
            new = src.stat().st_size
            report("du: stored bytes / new bytes", stored / new, 1.05, f"{stored} / {new}")
        drop_written(root)
        return took

    if "publish" in parts or "du" in parts:
        b, o = interleaved(rounds, cp_and_dgst, publish_new)
        if "publish" in parts:
            report(
                f"publish {sizes_note} vs cp + openssl dgst", o / b, 1.2, f"{o:.2f} s vs {b:.2f} s"
            )

    if "dedup" in parts:
        root = work / "dedup-root"
        drop_written(root)
        run(regctl("--root", str(root), "init"))
        run(regctl("--root", str(root), "publish", "m", str(src)))
        os.sync()

        def dgst(_i: int) -> float:
            return timed(lambda: run(["openssl", "dgst", "-sha256", str(src)]))

        def republish(i: int) -> float:
            return timed(lambda: run(regctl("--root", str(root), "publish", f"n{i}", str(src))))

        b, o = interleaved(rounds, dgst, republish)
        report(f"re-publish {sizes_note} vs openssl dgst", o / b, 1.2, f"{o:.2f} s vs {b:.2f} s")
        drop_written(root)


# ------------------------------------------------------------------ remote
def bench_remote(work: Path, src: Path, size_mb: int, rounds: int) -> None:
    from registry_cli import ModelRegistry
    from registry_cli.core.tokens import Tokens
    from registry_cli.server.launch import ServeRegistryProcess

    print(f"remote publish through serve-registry, {size_mb} MiB (median of {rounds})")
    served = work / "served"
    drop_written(served)
    reg = ModelRegistry(served)
    reg.init()
    token = Tokens(reg.store, reg.states, "bench").create("bench", ["admin"]).secret
    token_file = work / "token"
    token_file.write_text(token + "\n")
    home = work / "home"
    home.mkdir(exist_ok=True)
    proc = ServeRegistryProcess(
        served, log=work / "server.log", env={"HOME": str(home), "NO_COLOR": "1"}
    )
    proc.start()
    try:

        def local(i: int) -> float:
            root = work / f"local-{i}"
            drop_written(root)
            run(regctl("--root", str(root), "init"))
            took = timed(lambda: run(regctl("--root", str(root), "publish", "m", str(src))))
            drop_written(root)
            return took

        def remote(i: int) -> float:
            os.sync()
            cmd = regctl("--remote", proc.url, "--token-file", str(token_file), "publish")
            return timed(lambda: run([*cmd, f"m{i}", str(src)]))

        b, o = interleaved(rounds, local, remote)
        report(f"remote publish {size_mb} MiB vs local", o / b, 1.3, f"{o:.2f} s vs {b:.2f} s")
    finally:
        proc.stop()


# ------------------------------------------------------------------ s3
def bench_s3_publish(work: Path, size_mb: int, rounds: int) -> None:
    from bench_s3 import client, env_for, moto_server

    print(f"s3 root (moto), {size_mb} MiB (median of {rounds})", flush=True)
    src = work / "s3.bin"
    make_source(src, size_mb)
    with moto_server() as endpoint:
        s3 = client(endpoint)
        s3_env = env_for(endpoint)
        s3_env["PYTHONPATH"] = str(REPO)

        def boto(i: int) -> float:
            bucket = f"base-{i}"
            s3.create_bucket(Bucket=bucket)

            def go() -> None:
                s3.upload_file(str(src), bucket, "big.bin")
                digest = hashlib.sha256()
                with open(src, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        digest.update(chunk)

            return timed(go)

        def ours(i: int) -> float:
            bucket = f"ours-{i}"
            s3.create_bucket(Bucket=bucket)
            cmd = regctl("--root", f"s3://{bucket}/reg", "publish", "m", str(src))
            return timed(lambda: subprocess.run(cmd, env=s3_env, check=True, capture_output=True))

        b, o = interleaved(rounds, boto, ours)
        report(f"s3 publish {size_mb} MiB vs boto3 + sha256", o / b, 1.5, f"{o:.2f} s vs {b:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB of new bytes (default 1024)")
    parser.add_argument("--s3-size", type=int, help="MiB for the S3 publish (default size/4)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure")
    parser.add_argument("--only", help=f"comma-separated parts of {','.join(PARTS)}")
    args = parser.parse_args()
    parts = set(args.only.split(",")) if args.only else set(PARTS)
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    # as an install does (pip compiles the package): see the module docstring
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "registry_cli")], check=True
    )
    with tempfile.TemporaryDirectory(prefix="bench-cas-", dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        src = work / "new.bin"
        make_source(src, args.size)
        if parts & {"publish", "dedup", "du"}:
            bench_folder(work, src, args.size, args.rounds, parts)
        if "remote" in parts:
            bench_remote(work, src, args.size, args.rounds)
        if "s3" in parts:
            bench_s3_publish(work, args.s3_size or max(1, args.size // 4), args.rounds)
    missed = [name for name, _ratio, ok in RESULTS if not ok]
    print("all targets met" if not missed else f"missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
