"""Core and lifecycle performance, as ratios against baselines measured in the same run.

    python bench/bench_core.py            # full: 1 GiB publish, 10,000 versions
    python bench/bench_core.py --small    # quick: 128 MiB publish, 2,000 versions

Targets (issues 2 and 3):
  start-up     `regctl --help`, `regctl resolve m@candidate`
                                                     <= 2.0x `python -c "import typer, rich"`
  publish      1 GiB file (copy + hash + bundle + metadata)      <= 2.0x (cp + hashlib sha256)
  memory       publishing 1 GiB                                   < 100 MiB peak RSS
  scale        show/resolve with 10,000 versions                  <= 1.2x the same with 10
  lifecycle    promote/rollback/archive/alias/tag, whole process  <= 1.3x `regctl --help`
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV.update(NO_COLOR="1", REGCTL_ACTOR="bench")
RESULTS: list[tuple[str, float, str, bool]] = []


def regctl(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "registry_cli", "--root", str(root), *args]


def timed(cmd: list[str], runs: int, *, check: bool = True) -> float:
    """Median wall time of a whole process over ``runs`` runs (after one warm-up)."""
    subprocess.run(cmd, env=ENV, capture_output=True, check=False)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=ENV, capture_output=True)
        times.append(time.perf_counter() - t0)
        if check and proc.returncode != 0:
            raise SystemExit(f"{cmd} failed: {proc.stderr.decode()}")
    return statistics.median(times)


def report(name: str, ratio: float, target: float, detail: str) -> None:
    ok = ratio <= target
    RESULTS.append((name, ratio, detail, ok))
    print(
        f"  {name:<42} {ratio:5.2f}x  (target <= {target}x)  {'ok' if ok else 'MISSED'}  {detail}",
        flush=True,
    )


def bench_startup(work: Path, runs: int) -> float:
    from registry_cli import ModelRegistry

    root = work / "startup"
    src = work / "w.bin"
    src.write_bytes(os.urandom(1024))
    reg = ModelRegistry(root)
    reg.publish("m", [src])
    base = timed([sys.executable, "-c", "import typer, rich"], runs)
    helpt = timed(regctl(root, "--help"), runs)
    resolve = timed(regctl(root, "resolve", "m@candidate"), runs)
    print(f"start-up (median of {runs} whole processes)")
    report(
        "regctl --help vs import typer, rich",
        helpt / base,
        2.0,
        f"{helpt * 1000:.0f} ms vs {base * 1000:.0f} ms",
    )
    report("regctl resolve m@candidate vs import", resolve / base, 2.0, f"{resolve * 1000:.0f} ms")
    return helpt


def bench_lifecycle(work: Path, runs: int, help_time: float) -> None:
    from registry_cli import ModelRegistry

    root = work / "lifecycle"
    src = work / "w.bin"
    reg = ModelRegistry(root)
    for _ in range(3):
        reg.publish("m", [src], tags={"dataset": "d"})
    reg.promote("m", version="v1")
    reg.promote("m", version="v2")
    print(f"lifecycle commands (median of {runs} whole processes) vs regctl --help")
    # promote/rollback alternate so every run really changes state
    times = {"promote": [], "rollback": []}
    for _ in range(runs):
        for action, args in (
            ("rollback", ["rollback", "m"]),
            ("promote", ["promote", "m", "--version", "v2"]),
        ):
            t0 = time.perf_counter()
            subprocess.run(regctl(root, *args), env=ENV, capture_output=True, check=True)
            times[action].append(time.perf_counter() - t0)
    for action, values in times.items():
        t = statistics.median(values)
        report(f"regctl {action}", t / help_time, 1.3, f"{t * 1000:.0f} ms")
    for name, args in (
        ("alias set", ["alias", "set", "m", "canary", "v1"]),
        ("tag", ["tag", "m", "v1", "reviewed=yes"]),
        ("archive (no-op after the first)", ["archive", "m", "v3"]),
    ):
        t = timed(regctl(root, *args), runs)
        report(f"regctl {name}", t / help_time, 1.3, f"{t * 1000:.0f} ms")
    t = timed(regctl(root, "show", "m@champion"), runs)
    print(
        f"  (for reference, no target: regctl show renders a Rich table: {t * 1000:.0f} ms, "
        f"{t / help_time:.2f}x)"
    )


def bench_publish(work: Path, size_mb: int, repeats: int) -> None:
    src = work / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(1 << 20))
    root = work / "publish"

    def baseline() -> float:
        dst = work / "copy.bin"
        os.sync()  # each side starts with no dirty pages left by the other
        t0 = time.perf_counter()
        subprocess.run(["cp", str(src), str(dst)], check=True)
        h = hashlib.sha256()
        with open(dst, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        elapsed = time.perf_counter() - t0
        dst.unlink()
        return elapsed

    def publish() -> tuple[float, int]:
        os.sync()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            regctl(root, "--quiet", "publish", "big", str(src)), env=ENV, stdout=subprocess.DEVNULL
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit("publish failed")
        return elapsed, usage.ru_maxrss  # KiB on Linux

    base_times, pub_times, rss = [], [], []
    for _ in range(repeats):
        base_times.append(baseline())
        t, r = publish()
        pub_times.append(t)
        rss.append(r)
        shutil.rmtree(root / "models" / "big", ignore_errors=True)  # keep the disk free
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)
    b, p = statistics.median(base_times), statistics.median(pub_times)
    print(f"publish of a {size_mb} MiB file (median of {repeats})")
    report(
        "publish vs cp + hashlib sha256",
        p / b,
        2.0,
        f"{p:.2f} s vs {b:.2f} s ({size_mb / p:.0f} MiB/s)",
    )
    peak = max(rss) / 1024
    print(
        f"  {'peak RSS of the publish process':<42} {peak:5.0f} MiB (target < 100 MiB)  "
        f"{'ok' if peak < 100 else 'MISSED'}"
    )
    RESULTS.append(("publish peak RSS MiB", peak, "", peak < 100))


def clone_versions(root: Path, name: str, count: int) -> None:
    """Grow a model to ``count`` versions by cloning v1 (cheap; same shape as real ones)."""
    mdir = root / "models" / name
    v1 = mdir / "v1"
    manifest = json.loads((v1 / "manifest.json").read_text())
    version_yaml = (v1 / "version.yaml").read_text()
    for n in range(2, count + 1):
        vdir = mdir / f"v{n}"
        (vdir / "payload").mkdir(parents=True)
        for f in manifest["files"]:
            os.link(v1 / f["path"], vdir / f["path"])
        os.link(v1 / "bundle.tar.gz", vdir / "bundle.tar.gz")
        manifest["version"] = f"v{n}"
        (vdir / "manifest.json").write_text(json.dumps(manifest))
        (vdir / "version.yaml").write_text(version_yaml.replace("version: v1", f"version: v{n}"))
    state = json.loads((mdir / "model.yaml").read_text())
    state["versions"] = f"1-{count}"
    state["next_version"] = count + 1
    state["latest"]["dev"] = f"v{count}"
    state["aliases"]["candidate"] = f"v{count}"
    (mdir / "model.yaml").write_text(json.dumps(state, indent=2))


def bench_scale(work: Path, many: int, runs: int) -> None:
    from registry_cli import ModelRegistry

    src = work / "w.bin"
    times = {}
    for count in (10, many):
        root = work / f"scale{count}"
        reg = ModelRegistry(root)
        reg.publish("m", [src], metrics={"accuracy": 0.5})
        reg.promote("m")
        clone_versions(root, "m", count)
        reg.promote("m", version=f"v{count // 2}")
        times[count] = {
            "show": timed(regctl(root, "show", f"m:v{count // 2}", "--json"), runs),
            "resolve": timed(regctl(root, "resolve", "m@candidate"), runs),
            "resolve latest": timed(regctl(root, "resolve", "m:latest"), runs),
        }
    print(f"scale: {many} versions vs 10 (median of {runs} whole processes)")
    for key in times[10]:
        a, b = times[10][key], times[many][key]
        report(
            f"{key} with {many} vs 10 versions",
            b / a,
            1.2,
            f"{b * 1000:.0f} ms vs {a * 1000:.0f} ms",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="quick run with smaller sizes")
    parser.add_argument("--runs", type=int, default=15, help="processes per start-up timing")
    parser.add_argument("--only", choices=["startup", "scale", "publish"], help="one part only")
    args = parser.parse_args()
    size_mb, many, repeats = (128, 2000, 2) if args.small else (1024, 10_000, 5)
    with tempfile.TemporaryDirectory(prefix="regctl-bench-", dir=os.environ.get("BENCH_DIR")) as d:
        work = Path(d)
        if args.only in (None, "startup"):
            help_time = bench_startup(work, args.runs)
            bench_lifecycle(work, args.runs, help_time)
        if args.only in (None, "scale"):
            bench_scale(work, many, args.runs)
        if args.only in (None, "publish"):
            bench_publish(work, size_mb, repeats)
    missed = [r for r in RESULTS if not r[3]]
    print(f"\n{len(RESULTS) - len(missed)} of {len(RESULTS)} targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
