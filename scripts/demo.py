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
    proc = subprocess.run(
        [sys.executable, "-m", "registry_cli", *args], env=ENV, capture_output=True, text=True
    )
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
    regctl(
        "publish",
        "faq-bot",
        str(w1),
        "--metric",
        "accuracy=0.91",
        "--tag",
        "dataset=faq-2026-10",
        "--description",
        "first baseline",
    )
    w2 = fake_weights(WORK / "faq-bot" / "model.pt", seed=2)
    regctl(
        "publish",
        "faq-bot",
        str(w2),
        "--metric",
        "accuracy=0.94",
        "--tag",
        "dataset=faq-2026-11",
        "--description",
        "more data",
    )

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
    regctl(
        "publish", "faq-bot", str(w3), "--metric", "accuracy=0.96", "--tag", "dataset=faq-2026-11b"
    )
    regctl("promote", "faq-bot")
    say("   ... the KPI drops in production: roll back")
    regctl("rollback", "faq-bot")
    regctl("versions", "faq-bot")
    regctl("verify")
    say("5. The audit log tells what happened")
    regctl("audit", "faq-bot")


def _tiny_sequence_program(path: Path) -> Path:
    """A tiny [T=12, F=18] sequence model, exported with torch.export (dynamic batch)."""
    import torch

    class TinySeq(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(18, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.mean(dim=1))

    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        TinySeq().eval(), (torch.randn(2, 12, 18),), dynamic_shapes={"x": {0: batch}}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path


def step_predict() -> None:
    import json
    import socket
    import time
    import urllib.error
    import urllib.request

    say("Predictions: release a runnable sequence model, predict from the CLI")
    program = _tiny_sequence_program(WORK / "btc-lstm" / "model.pt2")
    regctl(
        "publish",
        "btc/lstm",
        str(program),
        "--example-shape",
        "1,12,18",
        "--metric",
        "mae=0.8",
        "--description",
        "tiny 12x18 sequence model",
    )
    regctl("promote", "btc/lstm")
    window = [[round(0.01 * (t + f), 2) for f in range(18)] for t in range(12)]
    x_file = WORK / "btc-lstm" / "x.json"
    x_file.write_text(json.dumps({"X": window}))
    regctl("predict", "btc/lstm@champion", "--input", str(x_file))
    bad = WORK / "btc-lstm" / "bad.json"
    bad.write_text(json.dumps({"X": [row[:17] for row in window]}))
    say("   ... a window with 17 features is refused before the model runs (exit 2)")
    regctl("predict", "btc/lstm@champion", "--input", str(bad), check=False)

    say("   ... serve it for a moment: GET /health, POST /predict")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["serve", "btc/lstm", "--port", str(port), "--load-interval", "0.5"]
    print(f"$ regctl {' '.join(args)} &", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "registry_cli", *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def call(path: str, body: dict | None = None) -> str:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            base + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as reply:
                return reply.read().decode()
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}: {exc.read().decode()}"

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if json.loads(call("/health")).get("model_loaded"):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        for path, body in (
            ("/health", None),
            ("/predict", {"X": window}),
            ("/predict", {"X": [row[:17] for row in window]}),
        ):
            print(
                f"$ curl {'-X POST ' if body else ''}{base}{path}"
                f"{' -d ' + json.dumps(body)[:40] + '...' if body else ''}"
            )
            print(call(path, body), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


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
    epochs = 10
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    ckpt = WORK / "shapes" / "best_checkpoint.pth"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "epoch": epochs,
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
        },
        ckpt,
    )
    print(
        f"(trained {epochs} steps: loss {loss.item():.3f}, train accuracy {accuracy:.2f}; "
        f"saved {ckpt.name})"
    )
    say("   ... run from the folder holding the model code, as `python -m` would")
    os.chdir(REPO / "scripts")
    try:
        regctl(
            "publish",
            "vision/shapes",
            str(ckpt),
            "--convert",
            "torch-standard",
            "--task",
            "classification",
            "--num-classes",
            "3",
            "--arch",
            "demo_models:TinyNet",
            "--example-shape",
            "1,3,16,16",
            "--metric",
            f"accuracy={accuracy:.3f}",
        )
        regctl("show", "vision/shapes")
        regctl("resolve", "vision/shapes", "--path")
        say("   ... a checkpoint that would need full unpickling is refused (exit 2)")
        pickled = WORK / "shapes" / "whole_model.pt"
        torch.save(model, pickled)
        regctl("publish", "vision/shapes", str(pickled), "--convert", "torch-standard", check=False)
    finally:
        os.chdir(REPO)


def step_distribution() -> None:
    """Serve dist/ over FTP on loopback, pull the released model like a client machine."""
    import secrets

    sys.path.insert(0, str(REPO))
    from registry_cli.ftp.launch import ServeFtpProcess

    say("Distribution: serve dist/ read-only over FTP, pull release latest on a 'client'")
    env = dict(ENV, DEMO_FTP_PASSWORD=secrets.token_urlsafe(12))
    log_path = WORK / "serve-ftp.log"
    args = ["--user", "mlops", "--password-env", "DEMO_FTP_PASSWORD"]
    print(
        f"$ DEMO_FTP_PASSWORD=... regctl serve-ftp --host 127.0.0.1 --port 0 {' '.join(args)} &",
        flush=True,
    )
    server = ServeFtpProcess(ROOT, *args, env=env, log=log_path)
    try:
        server.start()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    port = server.port
    try:
        cache = WORK / "client-cache"
        print(f"(the client cache is {cache}; without --cache-dir it is the torch hub dir)")
        pull = [
            "pull",
            "faq-bot",
            "--stage",
            "release",
            "--version",
            "latest",
            "--from",
            f"ftp://mlops@127.0.0.1:{port}",
            "--password-env",
            "DEMO_FTP_PASSWORD",
            "--cache-dir",
            str(cache),
        ]
        for attempt in range(2):
            if attempt:
                say(
                    "   ... pull again: the verified version is in the cache, nothing is downloaded"
                )
            print(f"$ regctl {' '.join(pull)}", flush=True)
            proc = subprocess.run(
                [sys.executable, "-m", "registry_cli", *pull],
                env=env,
                capture_output=True,
                text=True,
            )
            sys.stdout.write(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise SystemExit(f"demo step failed with exit code {proc.returncode}")
        say("   ... what a client sees over FTP (curl, any FTP client works)")
        curl = shutil.which("curl")
        if curl:
            for path in ("release/faq-bot/LATEST", "release/faq-bot/LATEST.json"):
                print(f"$ curl ftp://mlops:***@127.0.0.1:{port}/{path}", flush=True)
                subprocess.run(
                    [curl, "-sS", "--netrc-file", "/dev/stdin", f"ftp://127.0.0.1:{port}/{path}"],
                    input=f"machine 127.0.0.1 login mlops password {env['DEMO_FTP_PASSWORD']}\n",
                    text=True,
                )
    finally:
        server.stop()
        print("$ kill -TERM <serve-ftp>   # excerpts of the server log:", flush=True)
        wanted = ("serving", "listening", "logged in", "RETR", "stopping", "stopped")
        lines = [ln for ln in log_path.read_text().splitlines() if any(w in ln for w in wanted)]
        print("\n".join(lines), flush=True)


def step_server() -> None:
    """Run a registry server: tokens, the remote CLI from a 'CI runner', HTTP reads, the web UI."""
    import json

    sys.path.insert(0, str(REPO))
    from registry_cli.server.launch import ServeRegistryProcess

    say("Registry server: tokens, then publish and promote from another machine over HTTP")
    tokens = {}
    for name, scope in (("ci", "publish"), ("release-mgr", "promote")):
        made = regctl("token", "create", name, "--scope", scope, "--json", quiet=True)
        tokens[name] = json.loads(made.stdout)["token"]
        print(f"  token {name!r} ({scope}) created; only its hash is kept under .regctl/")
    log_path = WORK / "serve-registry.log"
    print("$ regctl serve-registry --host 127.0.0.1 --port 0 &", flush=True)
    with ServeRegistryProcess(ROOT, log=log_path, env=ENV) as server:
        url = server.url
        remote = dict(ENV, REGCTL_URL=url)
        remote.pop("REGCTL_ROOT", None)  # the 'CI runner' has no registry folder

        def on_runner(token: str, *args: str) -> None:
            print(f"$ REGCTL_URL={url} REGCTL_TOKEN=<{token}> regctl {' '.join(args)}", flush=True)
            proc = subprocess.run(
                [sys.executable, "-m", "registry_cli", *args],
                env=dict(remote, REGCTL_TOKEN=tokens[token]),
                capture_output=True,
                text=True,
            )
            sys.stdout.write(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise SystemExit(f"demo step failed with exit code {proc.returncode}")

        w4 = fake_weights(WORK / "faq-bot" / "model.pt", seed=4)
        on_runner("ci", "publish", "faq-bot", str(w4), "--metric", "accuracy=0.97",
                  "--tag", "dataset=faq-2026-12")  # fmt: skip
        on_runner("release-mgr", "promote", "faq-bot")
        on_runner("ci", "show", "faq-bot@champion")
        curl = shutil.which("curl")
        if curl:
            say("   ... any HTTP client reads the API and the served tree")
            for path in ("/api/v1/resolve?ref=faq-bot@champion", "/dist/release/faq-bot/LATEST"):
                print(f'$ curl -H "Authorization: Bearer <ci>" {url}{path}', flush=True)
                subprocess.run([curl, "-sS", "-H", f"Authorization: Bearer {tokens['ci']}",
                                f"{url}{path}"])  # fmt: skip
                print(flush=True)
        print(f"(the web UI is at {url}/ while the server runs: sign in with a token)")
    say("   ... the audit names the tokens")
    regctl("audit", "faq-bot", "--limit", "2")


def main() -> None:
    if ROOT.exists():
        print(f"(removing the previous demo registry at {ROOT})")
        shutil.rmtree(ROOT, ignore_errors=True)
    shutil.rmtree(WORK, ignore_errors=True)
    step_core()
    step_lifecycle()
    step_distribution()
    step_server()
    step_formats()
    step_predict()
    say(f"Done. The registry is in {ROOT}; try: regctl --root {ROOT} list")


if __name__ == "__main__":
    main()
