"""`make demo`: the main regctl flow on a registry in ./registry, told as a story.

Every step runs the real CLI (`python -m registry_cli`) and prints the command
before its output, so the demo doubles as a tour of the commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("REGCTL_DEMO_ROOT", "registry")).absolute()
WORK = Path(os.environ.get("REGCTL_DEMO_WORK", "demo-work")).absolute()
ENV = dict(os.environ, REGCTL_ROOT=str(ROOT), REGCTL_ACTOR="demo", NO_COLOR="1", COLUMNS="120")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def regctl(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    print(f"$ regctl {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "registry_cli", *args], env=ENV,
                          capture_output=True, text=True)
    if not quiet:
        sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    sys.stdout.flush()
    if check and proc.returncode != 0:
        raise SystemExit(f"demo step failed with exit code {proc.returncode}")
    return proc


def fake_weights(path: Path, seed: int, size: int = 256 * 1024) -> Path:
    """A small generated 'model file' (random bytes stand in for weights)."""
    import random

    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(rng.getrandbits(8) for _ in range(size)))
    return path


def step_core() -> None:
    say("1. Create a registry and publish two versions of a model")
    regctl("init", str(ROOT))
    w1 = fake_weights(WORK / "faq-bot" / "model.pt", seed=1)
    regctl("publish", "faq-bot", str(w1), "--metric", "accuracy=0.91", "--tag", "dataset=faq-2026-10",
           "--description", "first baseline")
    w2 = fake_weights(WORK / "faq-bot" / "model.pt", seed=2)
    regctl("publish", "faq-bot", str(w2), "--metric", "accuracy=0.94", "--tag", "dataset=faq-2026-11",
           "--description", "more data")

    say("2. Look around: models, versions, one version in detail")
    regctl("list")
    regctl("versions", "faq-bot")
    regctl("show", "faq-bot:v2")

    say("3. Resolve references the way scripts do")
    for ref in ("faq-bot", "faq-bot:latest", "faq-bot:v1", "faq-bot@candidate"):
        regctl("resolve", ref)
    regctl("resolve", "faq-bot:best", "--metric", "accuracy")
    regctl("resolve", "faq-bot@candidate", "--path")


def step_lifecycle() -> None:
    say("4. Lifecycle: promote, publish a better version, promote, roll back")
    regctl("promote", "faq-bot", "--version", "v1")
    regctl("promote", "faq-bot")
    w3 = fake_weights(WORK / "faq-bot" / "model.pt", seed=3)
    regctl("publish", "faq-bot", str(w3), "--metric", "accuracy=0.96", "--tag", "dataset=faq-2026-11b")
    regctl("promote", "faq-bot")
    say("   ... the KPI drops in production: roll back")
    regctl("rollback", "faq-bot")
    regctl("versions", "faq-bot")
    regctl("verify")
    say("5. The audit log tells what happened")
    regctl("audit", "faq-bot")


def step_formats() -> None:
    """Train a tiny classifier, save a checkpoint like training scripts do, publish it
    converted to the standard file with a runnable program."""
    import torch

    sys.path.insert(0, str(REPO / "scripts"))
    from demo_models import TinyNet

    say("Formats: a training script leaves best_checkpoint.pth; publish it converted")
    torch.manual_seed(0)
    model = TinyNet(num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(64, 3, 16, 16)
    y = torch.randint(0, 3, (64,))
    x[torch.arange(64), y] += 0.5  # the label is the brightest channel: learnable
    for epoch in range(10):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    ckpt = WORK / "shapes" / "best_checkpoint.pth"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict()}, ckpt)
    print(f"(trained 10 steps: loss {loss.item():.3f}, train accuracy {accuracy:.2f}; "
          f"saved {ckpt.name})")
    say("   ... run from the folder holding the model code, as `python -m` would")
    os.chdir(REPO / "scripts")
    try:
        regctl("publish", "vision/shapes", str(ckpt), "--convert", "torch-standard",
               "--task", "classification", "--num-classes", "3",
               "--arch", "demo_models:TinyNet", "--example-shape", "1,3,16,16",
               "--metric", f"accuracy={accuracy:.3f}")
        regctl("show", "vision/shapes")
        regctl("resolve", "vision/shapes", "--path")
        say("   ... a checkpoint that would need full unpickling is refused (exit 2)")
        pickled = WORK / "shapes" / "whole_model.pt"
        torch.save(model, pickled)
        regctl("publish", "vision/shapes", str(pickled), "--convert", "torch-standard",
               check=False)
    finally:
        os.chdir(REPO)


def main() -> None:
    if ROOT.exists():
        print(f"(removing the previous demo registry at {ROOT})")
        shutil.rmtree(ROOT, ignore_errors=True)
    shutil.rmtree(WORK, ignore_errors=True)
    step_core()
    step_lifecycle()
    step_formats()
    say(f"Done. The registry is in {ROOT}; try: regctl --root {ROOT} list")


if __name__ == "__main__":
    main()
