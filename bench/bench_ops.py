"""Everyday operations: shell completion and doctor, as ratios against `regctl --help`.

    python bench/bench_ops.py            # 200 models, faq-bot with 1,000 versions
    python bench/bench_ops.py --small    # 50 models, faq-bot with 200 versions

Targets (issue 16):
  completion   every completion, whole process (what the shell waits for)
                                                         <= 1.5x `regctl --help`
  doctor       reported, no target (it re-hashes every version, like verify)

Also prints `regctl --help` itself, so a start-up change shows up here too. Each
figure is the median wall time and CPU time of whole processes; on a busy machine
(load average above the core count) the target is judged on CPU time.
"""

from __future__ import annotations

import argparse
import os
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
for var in ("REGCTL_ROOT", "REGCTL_CONFIG", "_REGCTL_COMPLETE", "COMP_WORDS", "COMP_CWORD"):
    ENV.pop(var, None)
RESULTS: list[bool] = []


def timed(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of a whole process over
    ``runs`` runs (after one warm-up)."""
    full = dict(ENV, **(env or {}))
    subprocess.run(cmd, env=full, capture_output=True, check=False)
    walls, cpus = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )  # fmt: skip
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - t0)
        cpus.append(usage.ru_utime + usage.ru_stime)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{cmd} failed: {err.decode()}")
    return statistics.median(walls), statistics.median(cpus)


def complete_env(*words: str) -> dict[str, str]:
    """Typer's bash completion request for the last word of ``words``."""
    return {
        "_REGCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "\n".join(words),
        "COMP_CWORD": str(len(words) - 1),
    }


def build(root: Path, models: int, versions: int) -> None:
    from registry_cli import ModelRegistry

    reg = ModelRegistry(root)
    src = root.parent / "w.bin"
    src.write_bytes(os.urandom(1024))
    for i in range(models):
        reg.publish(f"team/project-{i // 10}/task-{i}", [src])
    for _ in range(versions):
        reg.publish("faq-bot", [src], set_alias=False)
    reg.promote("faq-bot", version="v1")
    reg.set_alias("faq-bot", "canary", "v2")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a smaller root, fewer runs")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    models, versions = (50, 200) if args.small else (200, 1000)
    runs = args.runs or (5 if args.small else 11)
    with tempfile.TemporaryDirectory(prefix="regctl-bench-ops-") as tmp:
        root = Path(tmp) / "reg"
        build(root, models, versions)
        base = [sys.executable, "-m", "registry_cli"]
        busy = os.getloadavg()[0] > (os.cpu_count() or 1)
        judged = "CPU time (the machine is busy: wall times are noise)" if busy else "wall time"
        help_wall, help_cpu = timed([*base, "--help"], runs)
        print(f"completion ({models} models, faq-bot with {versions} versions; median of {runs})")
        print(f"  target on {judged}; load average {os.getloadavg()[0]:.1f}")
        print(f"  {'regctl --help':<42} {help_wall * 1000:6.0f} ms  cpu {help_cpu * 1000:4.0f} ms")
        r = ["regctl", "--root", str(root)]
        cases = {
            "command name (regctl pro<TAB>)": complete_env("regctl", "pro"),
            "model name (promote team/project-1/<TAB>)": complete_env(
                *r, "promote", "team/project-1/"
            ),
            "alias (show faq-bot@<TAB>)": complete_env(*r, "show", "faq-bot@"),
            "version (show faq-bot:<TAB>, bash split)": complete_env(*r, "show", "faq-bot", ":"),
            "stage (promote faq-bot --to <TAB>)": complete_env(
                *r, "promote", "faq-bot", "--to", ""
            ),
        }
        for name, env in cases.items():
            wall, cpu = timed(base, runs, env)
            ratio = cpu / help_cpu if busy else wall / help_wall
            ok = ratio <= 1.5
            RESULTS.append(ok)
            print(
                f"  {name:<42} {wall * 1000:6.0f} ms  cpu {cpu * 1000:4.0f} ms  {ratio:4.2f}x  "
                f"(target <= 1.5x)  {'ok' if ok else 'MISSED'}",
                flush=True,
            )
        wall, _cpu = timed([*base, "--root", str(root), "doctor", "--json"], max(3, runs // 3))
        print(f"doctor\n  {'regctl doctor --json':<42} {wall * 1000:6.0f} ms  (no target)")
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
