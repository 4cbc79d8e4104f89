"""OCI push and pull against Debian's docker-registry on loopback (docs/oci.md,
"Performance"; issue 22).

A temporary root gets one version of ``--size`` bytes (default 1 GiB) in one file,
exported as an OCI image layout with ``registry_cli.oci.layout.export``. Then, runs
interleaved and medians compared (each run against fresh registries, so neither
side finds a blob already there):

1. ``regctl push NAME oci://...`` (the CLI process end to end) against
   ``skopeo copy oci:LAYOUT:v1 docker://...`` of the same layout (target <= 1.3x);
2. a second ``regctl push`` of the same version: ``pushed_bytes`` must be 0;
3. ``regctl pull NAME --from oci://...`` (fresh cache; the CLI end to end: manifest,
   config, the blob with inline sha256, install) against ``curl -o`` of the same
   blobs (manifest, config and layer; target <= 1.2x).

Usage: python bench/bench_oci.py [--size 1G] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
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

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.oci import layout as oci_layout  # noqa: E402
from tests.oci_registry import OciRegistry, skopeo  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def regctl(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "registry_cli", *args], capture_output=True, text=True, env=ENV
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"regctl {' '.join(args)} failed: {proc.stderr}")
    return elapsed, proc


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="payload size (e.g. 256M, 1G)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-oci-", dir=args.dir))
    try:
        root = work / "root"
        weights = work / "src" / "model.bin"
        weights.parent.mkdir(parents=True)
        with open(weights, "wb") as out:
            left = size
            while left:
                block = os.urandom(min(left, 16 << 20))
                out.write(block)
                left -= len(block)
        reg = ModelRegistry(root)
        reg.publish("bench", [weights])
        weights.unlink()
        layout = work / "layout"
        oci_layout.export(reg, ["bench:v1"], layout)
        info = reg.get("bench:v1")
        sha = info.files[0]["sha256"]
        push_s, skopeo_s, second_s, pull_s, curl_s = [], [], [], [], []
        second_bytes = []
        for run in range(args.runs):
            with OciRegistry(work / f"r{run}a") as a, OciRegistry(work / f"r{run}b") as b:
                order = [("regctl", a), ("skopeo", b)]
                if run % 2:
                    order.reverse()
                for who, r in order:
                    if who == "regctl":
                        t, _ = regctl(
                            "--root", str(root), "push", "bench", f"oci://{r.host}/bench",
                            "--plain-http", "--json",
                        )  # fmt: skip
                        push_s.append(t)
                    else:
                        t0 = time.perf_counter()
                        got = skopeo(
                            "copy", "--dest-tls-verify=false", f"oci:{layout}:v1",
                            f"docker://{r.host}/bench:v1", timeout=3600,
                        )  # fmt: skip
                        if got.returncode != 0:
                            raise SystemExit(f"skopeo copy failed: {got.stderr}")
                        skopeo_s.append(time.perf_counter() - t0)
                t, proc = regctl(
                    "--root", str(root), "push", "bench", f"oci://{a.host}/bench",
                    "--plain-http", "--json",
                )  # fmt: skip
                second_s.append(t)
                second_bytes.append(json.loads(proc.stdout)["pushed_bytes"])

                manifest = (
                    json.loads(
                        skopeo("inspect", "--raw", "--tls-verify=false",
                               f"docker://{a.host}/bench:v1").stdout
                    )
                )  # fmt: skip
                blobs = [manifest["config"]["digest"], f"sha256:{sha}"]
                cache = work / f"cache{run}"
                curled = work / f"curl{run}"
                curled.mkdir()
                steps = [("pull", None), ("curl", None)]
                if run % 2:
                    steps.reverse()
                for who, _ in steps:
                    if who == "pull":
                        t, _ = regctl(
                            "pull", "bench", "--from", f"oci://{a.host}/bench:v1",
                            "--plain-http", "--cache-dir", str(cache), "--json",
                        )  # fmt: skip
                        pull_s.append(t)
                    else:
                        cmd = ["curl", "-sf", "-H",
                               "Accept: application/vnd.oci.image.manifest.v1+json",
                               "-o", str(curled / "manifest"),
                               f"http://{a.host}/v2/bench/manifests/v1"]  # fmt: skip
                        for i, d in enumerate(blobs):
                            cmd += [
                                "-o",
                                str(curled / f"b{i}"),
                                f"http://{a.host}/v2/bench/blobs/{d}",
                            ]
                        curl_s.append(timed(cmd))
                shutil.rmtree(cache)
                shutil.rmtree(curled)
        med = statistics.median
        gib = size / (1 << 30)
        print(f"payload {size} bytes ({gib:.2f} GiB), {args.runs} runs, medians:")
        print(f"  regctl push          {med(push_s):7.2f} s")
        print(f"  skopeo copy          {med(skopeo_s):7.2f} s")
        ratio_push = med(push_s) / med(skopeo_s)
        print(f"  push / skopeo        {ratio_push:7.2f}x   (target <= 1.3x)")
        print(
            f"  second push          {med(second_s):7.2f} s, blob bytes sent: {max(second_bytes)}"
        )
        print(f"  regctl pull          {med(pull_s):7.2f} s")
        print(f"  curl of the blobs    {med(curl_s):7.2f} s")
        ratio_pull = med(pull_s) / med(curl_s)
        print(f"  pull / curl          {ratio_pull:7.2f}x   (target <= 1.2x)")
        ok = ratio_push <= 1.3 and ratio_pull <= 1.2 and max(second_bytes) == 0
        print("PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
