"""``serve-ftp`` download of a bundle assembled from the payload vs the same bytes as
a plain file, as a ratio measured in one run (issue 21).

    python bench/bench_bundle.py                 # 1 GiB payload
    python bench/bench_bundle.py --size 256MiB   # a quicker check

Target: virtual bundle <= 1.2 x plain file (the plain file goes out with
sendfile(2); the virtual one is framed in Python from the payload files).

A registry is published in a temp folder; the real ``bundle.tar.gz`` is kept
as a plain file in the served tree (``dist/plain/``), then the version is
turned into one whose bundle is not stored (``stored: false``) and its bundle
files removed. One ``serve-ftp`` serves both; ``curl`` downloads each
alternately, ``--repeats`` times, warm page cache; both downloads are checked
against the recorded sha256. The figures are the medians.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TARGET = 1.2
UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_size(text: str) -> int:
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def make_registry(tmp: Path, size: int) -> tuple[Path, dict]:
    import yaml

    from registry_cli import ModelRegistry

    src = tmp / "art"
    src.mkdir()
    with open(src / "weights.bin", "wb") as fh:  # a few files, most of the bytes in one
        left = size
        while left:
            n = min(left, 16 << 20)
            fh.write(os.urandom(n))
            left -= n
    (src / "config.json").write_text('{"layers": 12}\n')
    root = tmp / "registry"
    reg = ModelRegistry(root)
    reg.init()
    reg.publish("bench/model", [src])
    vdir = root / "models/bench/model/v1"
    real = vdir / "bundle.tar.gz"
    plain = root / "dist/plain"
    plain.mkdir(parents=True)
    shutil.copyfile(real, plain / "bundle.tar.gz")
    with open(real, "rb") as fh:
        mtime = struct.unpack("<I", fh.read(10)[4:8])[0]
    doc = yaml.safe_load((vdir / "version.yaml").read_text())
    doc["bundle"].update(mtime=mtime, stored=False)
    os.chmod(vdir / "version.yaml", 0o644)
    (vdir / "version.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for path in [real, *root.glob("dist/*/bench/model/versions/v1/bundle.tar.gz")]:
        path.unlink()
    shutil.rmtree(src)
    return root, doc["bundle"]


def fetch(url: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1GiB", help="payload size (e.g. 256MiB, 1GiB)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    size = parse_size(args.size)
    if shutil.which("curl") is None:
        print("error: bench_bundle needs curl", file=sys.stderr)
        return 2
    from registry_cli.ftp.launch import ServeFtpProcess

    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp_s:
        tmp = Path(tmp_s)
        root, bundle = make_registry(tmp, size)
        os.environ["BENCH_FTP_PW"] = "bench-pw"
        srv = ServeFtpProcess(
            root, "--user", "bench", "--password-env", "BENCH_FTP_PW", log=tmp / "ftp.log"
        )
        srv.start()
        try:
            base = f"ftp://bench:bench-pw@127.0.0.1:{srv.port}"
            urls = {
                "virtual": f"{base}/dev/bench/model/versions/v1/bundle.tar.gz",
                "plain": f"{base}/plain/bundle.tar.gz",
            }
            out = tmp / "out.tar.gz"
            times: dict[str, list[float]] = {k: [] for k in urls}
            first: dict[str, float] = {}
            for kind, url in urls.items():  # warm-up + correctness
                first[kind] = fetch(url, out)
                got = hashlib.sha256(out.read_bytes()).hexdigest()
                if got != bundle["sha256"]:
                    print(f"error: {kind} download has sha256 {got}", file=sys.stderr)
                    return 1
            for _ in range(args.repeats):
                for kind, url in urls.items():
                    times[kind].append(fetch(url, out))
        finally:
            srv.stop()
    first_s = first
    med = {k: statistics.median(v) for k, v in times.items()}
    mib = bundle["size"] / (1 << 20)
    ratio = med["virtual"] / med["plain"]
    print(f"bundle {mib:.0f} MiB, {args.repeats} alternating downloads each (curl over serve-ftp)")
    for kind in urls:
        print(f"  {kind:8s} median {med[kind]:.3f} s  ({mib / med[kind]:.0f} MiB/s)")
    print(
        f"  first virtual download {first_s['virtual']:.3f} s (hashes every payload file "
        "once per server process; later ones trust them)"
    )
    verdict = "ok" if ratio <= TARGET else "ABOVE TARGET"
    print(f"  ratio virtual/plain {ratio:.2f}x (target <= {TARGET}x): {verdict}")
    print(f"command: python bench/bench_bundle.py --size {args.size} --repeats {args.repeats}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
