"""Publish with conversion vs its parts, as a ratio measured in one run (issue 5).

    python bench/bench_convert.py            # ~200 MB checkpoints
    python bench/bench_convert.py --small    # ~20 MB, a quick check

Target: ``publish --convert torch-standard`` of a checkpoint
    <= 1.5 x ( torch.load + torch.save of the same checkpoint  +  a plain publish of it ).

Two checkpoints are measured: what training scripts save (``{"epoch",
"model_state_dict", "optimizer_state_dict"}``, SGD momentum, so the weights are
half the file; the exit status follows this one) and the worst case, a bare
state dict (the standard file is as large as the checkpoint). Everything runs in this
process through the
library, so torch's import is in neither side; each figure is the median of
``--repeats`` alternating runs on a warm page cache. The figures and the command
are appended to docs/performance.md under "## Formats".
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TARGET = 1.5
DOC = REPO / "docs" / "performance.md"
HEADING = "## Formats"


def make_checkpoint(path: Path, size_mb: int, kind: str) -> int:
    """A checkpoint of about ``size_mb`` MB; returns its size in bytes."""
    import torch

    torch.manual_seed(0)
    weight_mb = size_mb if kind == "bare" else size_mb // 2
    layers = max(1, weight_mb // 5)  # 5 MB float32 tensors, like a mid-size conv/linear net
    model = torch.nn.Sequential(*[torch.nn.Linear(1280, 1024) for _ in range(layers)])
    if kind == "bare":
        torch.save(model.state_dict(), path)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        opt.step()
        torch.save(
            {
                "epoch": 10,
                "model_state_dict": model.state_dict(),
                "optimizer_state_dict": opt.state_dict(),
            },
            path,
        )
    return path.stat().st_size


def measure(work: Path, ckpt: Path, repeats: int) -> dict[str, float]:
    """Medians of load+save, plain publish and publish with conversion, and the spread
    of the per-round ratio (machine noise shows there)."""
    import torch

    from registry_cli import ModelRegistry
    from registry_cli.formats.publish_sources import ConversionOptions, publish_with_conversion

    load_save, plain, convert, ratios = [], [], [], []
    for i in range(repeats + 1):  # the first round warms caches and is dropped
        root = work / f"reg{i}"
        reg = ModelRegistry(root)
        out = work / "resaved.pt"

        t0 = time.perf_counter()
        obj = torch.load(str(ckpt), map_location="cpu", weights_only=True)
        torch.save(obj, str(out))
        t1 = time.perf_counter()
        del obj
        out.unlink()

        t2 = time.perf_counter()
        reg.publish("plain", [ckpt])
        t3 = time.perf_counter()

        t4 = time.perf_counter()
        publish_with_conversion(
            reg, "converted", [ckpt], options=ConversionOptions(task="classification")
        )
        t5 = time.perf_counter()
        shutil.rmtree(root, ignore_errors=True)
        if i:
            load_save.append(t1 - t0)
            plain.append(t3 - t2)
            convert.append(t5 - t4)
            ratios.append((t5 - t4) / ((t1 - t0) + (t3 - t2)))
    return {
        "load_save": statistics.median(load_save),
        "plain": statistics.median(plain),
        "convert": statistics.median(convert),
        "low": min(ratios),
        "high": max(ratios),
    }


def append_doc(lines: list[str], command: str) -> None:
    """Replace our own section of docs/performance.md (or add it); others' stay as they are."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join(
        [
            HEADING,
            "",
            f"`{command}` ({stamp}, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}):",
            "",
            "Target: publish with `--convert torch-standard` <= 1.5 x (torch.load + torch.save of "
            "the same checkpoint + a plain publish of it). Medians, warm page cache, in-process.",
            "",
            "| checkpoint | size | load+save | plain publish | publish --convert | ratio "
            "| per-round range | |",
            "|---|---|---|---|---|---|---|---|",
            *lines,
            "",
            "The checkpoint is read from storage once (hashed, then memory-mapped by "
            "`torch.load(mmap=True)`); the standard file is renamed into the version, not "
            "copied. What remains is inherent: the version stores the original and "
            "the standard file, and the bundle holds both again, while the baseline's "
            "`torch.save` never reaches the disk. With a bare state dict the standard file is "
            "as large as the checkpoint, so the publish writes twice the bytes of a plain one "
            "and ~2x is the floor; a training checkpoint's weights are a fraction of it "
            "(here half: SGD momentum doubles them). The machine is shared, so rounds vary.",
            "",
        ]
    )
    start = text.find(HEADING + "\n")
    if start >= 0:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="~20 MB checkpoints")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/performance.md")
    args = parser.parse_args()
    size_mb = 20 if args.small else 200
    rows, ok = [], True
    print(f"publish --convert torch-standard vs load+save + plain publish ({size_mb} MB)")
    with tempfile.TemporaryDirectory(prefix="regctl-bench-convert-") as tmp:
        work = Path(tmp)
        for kind in ("training", "bare"):
            ckpt = work / f"{kind}.pth"
            size = make_checkpoint(ckpt, size_mb, kind)
            m = measure(work, ckpt, args.repeats)
            ratio = m["convert"] / (m["load_save"] + m["plain"])
            passed = ratio <= TARGET
            if kind == "training":  # the case; the bare row shows the worst case
                ok &= passed
            label = (
                "training script {epoch, model_state_dict, optimizer_state_dict}"
                if kind == "training"
                else "bare state dict (worst case)"
            )
            verdict = "ok" if passed else "MISSED"
            print(
                f"  {label:<66} {size / 1e6:6.0f} MB  load+save {m['load_save']:.2f}s  "
                f"plain {m['plain']:.2f}s  convert {m['convert']:.2f}s  ratio {ratio:.2f}x "
                f"(rounds {m['low']:.2f}-{m['high']:.2f}) (target <= {TARGET}x) {verdict}",
                flush=True,
            )
            rows.append(
                f"| {label} | {size / 1e6:.0f} MB | {m['load_save']:.2f} s | {m['plain']:.2f} s "
                f"| {m['convert']:.2f} s | {ratio:.2f}x | {m['low']:.2f}-{m['high']:.2f}x "
                f"| {verdict} |"
            )
    command = "python bench/bench_convert.py" + (" --small" if args.small else "")
    if not args.no_doc and not args.small:  # a quick run never replaces the full figures
        append_doc(rows, command)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
