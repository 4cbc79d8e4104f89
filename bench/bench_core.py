"""Core and lifecycle performance, as ratios against baselines measured in the same run.

    python bench/bench_core.py            # full: 512 MiB and 1 GiB publish, 10,000 versions
    python bench/bench_core.py --small    # quick: 128 MiB publish, 2,000 versions

Targets (issues 2, 3 and 20):
  start-up     `regctl --help`, `regctl resolve m@candidate` (also on a root made by
               `regctl init`, which reads registry.yaml)
                                                     <= 1.8x `python -c "import typer, rich"`
  publish      512 MiB, 1 GiB file (copy + hash + bundle + metadata) <= 2.0x (cp + hashlib sha256)
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
    """Interleaved rounds: each round runs the baseline and every command once, in an
    order that rotates, so load from other processes falls on all sides alike."""
    from registry_cli import ModelRegistry

    root = work / "startup"
    src = work / "w.bin"
    src.write_bytes(os.urandom(1024))
    reg = ModelRegistry(root)
    reg.publish("m", [src])
    inited = work / "startup-init"  # as a user's root: `regctl init` wrote registry.yaml
    subprocess.run(regctl(inited, "init"), env=ENV, capture_output=True, check=True)
    subprocess.run(
        regctl(inited, "--quiet", "publish", "m", str(src)),
        env=ENV,
        capture_output=True,
        check=True,
    )
    sides = {
        "base": [sys.executable, "-c", "import typer, rich"],
        "help": regctl(root, "--help"),
        "resolve": regctl(root, "resolve", "m@candidate"),
        "resolve-init": regctl(inited, "resolve", "m@candidate"),
    }
    times: dict[str, list[float]] = {key: [] for key in sides}
    for cmd in sides.values():  # warm-up: bytecode caches written, files in the page cache
        subprocess.run(cmd, env=ENV, capture_output=True, check=True)
    keys = list(sides)
    for i in range(runs):
        for key in keys[i % len(keys) :] + keys[: i % len(keys)]:
            t0 = time.perf_counter()
            proc = subprocess.run(sides[key], env=ENV, capture_output=True)
            times[key].append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"{sides[key]} failed: {proc.stderr.decode()}")
    med = {key: statistics.median(values) for key, values in times.items()}

    def spread(key: str) -> str:
        ratios = sorted(t / b for t, b in zip(times[key], times["base"], strict=True))
        return f"per round {ratios[len(ratios) // 4]:.2f}-{ratios[3 * len(ratios) // 4]:.2f}x (IQR)"

    print(f"start-up (median of {runs} interleaved rounds of whole processes)")
    report(
        "regctl --help vs import typer, rich",
        med["help"] / med["base"],
        1.8,
        f"{med['help'] * 1000:.0f} ms vs {med['base'] * 1000:.0f} ms; {spread('help')}",
    )
    report(
        "regctl resolve m@candidate vs import",
        med["resolve"] / med["base"],
        1.8,
        f"{med['resolve'] * 1000:.0f} ms; {spread('resolve')}",
    )
    report(
        "  the same on a root with registry.yaml",
        med["resolve-init"] / med["base"],
        1.8,
        f"{med['resolve-init'] * 1000:.0f} ms; {spread('resolve-init')}",
    )
    return med["help"]


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


def prime_page_pool(work: Path, size: int) -> None:
    """Write and delete ``size`` bytes, then flush: the next timed run finds the same
    pool of freshly freed page-cache memory, whichever side ran before it.

    On this VM a page the guest has not touched for a few seconds costs ~5x more to
    fill than one just freed (the host takes idle memory back); without this, each
    side inherits the other's freed pages: the baseline always ran right after a
    publish had freed 2x its size, the publish after a baseline had freed 1x, so the
    publish paid for cold pages the baseline never saw (see docs/performance.md).
    """
    scratch = work / "prime.bin"
    block = bytes(1 << 20)
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size >> 20):
            os.write(fd, block)
    finally:
        os.close(fd)
    scratch.unlink()  # dirty pages of a deleted file are dropped, never written back
    os.sync()  # and nothing another run left dirty is written back during the timing


def bench_publish(work: Path, sizes_mb: list[int], repeats: int) -> None:
    for size_mb in sizes_mb:
        publish_one_size(work, size_mb, repeats)


def publish_one_size(work: Path, size_mb: int, repeats: int) -> None:
    src = work / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(1 << 20))
    root = work / "publish"
    pool = 2 * (size_mb << 20) + (64 << 20)  # what the bigger side (publish) writes

    def baseline() -> tuple[float, float]:
        dst = work / "copy.bin"
        prime_page_pool(work, pool)
        r0 = os.times()
        t0 = time.perf_counter()
        subprocess.run(["cp", str(src), str(dst)], check=True)
        h = hashlib.sha256()
        with open(dst, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        elapsed = time.perf_counter() - t0
        r1 = os.times()
        dst.unlink()
        cpu = sum(r1[:4]) - sum(r0[:4])  # this process + cp
        return elapsed, cpu

    def publish() -> tuple[float, float, int]:
        prime_page_pool(work, pool)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            regctl(root, "--quiet", "publish", "big", str(src)), env=ENV, stdout=subprocess.DEVNULL
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit("publish failed")
        cpu = usage.ru_utime + usage.ru_stime
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)  # keep the disk free
        return elapsed, cpu, usage.ru_maxrss  # KiB on Linux

    base_times, pub_times, base_cpu, pub_cpu, rss = [], [], [], [], []
    for i in range(repeats):
        first_publish = i % 2 == 1  # alternate the order: no side always runs first
        if first_publish:
            t, c, r = publish()
        bt, bc = baseline()
        base_times.append(bt)
        base_cpu.append(bc)
        if not first_publish:
            t, c, r = publish()
        pub_times.append(t)
        pub_cpu.append(c)
        rss.append(r)
        print(
            f"  round {i + 1}: publish {t:.2f} s (cpu {c:.2f} s) vs cp + sha256 {bt:.2f} s "
            f"(cpu {bc:.2f} s): {t / bt:.2f}x",
            flush=True,
        )
    src.unlink()
    b, p = statistics.median(base_times), statistics.median(pub_times)
    ratios = sorted(pt / bt for pt, bt in zip(pub_times, base_times, strict=True))
    print(f"publish of a {size_mb} MiB file (median of {repeats}, interleaved rounds)")
    report(
        f"publish {size_mb} MiB vs cp + hashlib sha256",
        p / b,
        2.0,
        f"{p:.2f} s vs {b:.2f} s ({size_mb / p:.0f} MiB/s); per round {ratios[0]:.2f}-"
        f"{ratios[-1]:.2f}x",
    )
    bc, pc = statistics.median(base_cpu), statistics.median(pub_cpu)
    print(
        f"  {'(cpu time, no target)':<42} {pc / bc:5.2f}x  {pc:.2f} s vs {bc:.2f} s "
        "(publish also starts Python, hashes twice, writes twice)"
    )
    peak = max(rss) / 1024
    print(
        f"  {'peak RSS of the publish process':<42} {peak:5.0f} MiB (target < 100 MiB)  "
        f"{'ok' if peak < 100 else 'MISSED'}"
    )
    RESULTS.append((f"publish {size_mb} MiB peak RSS MiB", peak, "", peak < 100))


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
    if not src.exists():  # --only scale
        src.write_bytes(os.urandom(1024))
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
    parser.add_argument("--publish-mib", help="publish sizes in MiB, comma-separated")
    parser.add_argument("--repeats", type=int, help="publish rounds per size")
    args = parser.parse_args()
    sizes, many, repeats = ([128], 2000, 2) if args.small else ([512, 1024], 10_000, 5)
    if args.publish_mib:
        sizes = [int(x) for x in args.publish_mib.split(",")]
    repeats = args.repeats or repeats
    with tempfile.TemporaryDirectory(prefix="regctl-bench-", dir=os.environ.get("BENCH_DIR")) as d:
        work = Path(d)
        if args.only in (None, "startup"):
            help_time = bench_startup(work, args.runs)
            bench_lifecycle(work, args.runs, help_time)
        if args.only in (None, "scale"):
            bench_scale(work, many, args.runs)
        if args.only in (None, "publish"):
            bench_publish(work, sizes, repeats)
    missed = [r for r in RESULTS if not r[3]]
    print(f"\n{len(RESULTS) - len(missed)} of {len(RESULTS)} targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
