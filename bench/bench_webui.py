"""The web UI (issue 12): server-side render time of its two biggest pages against the
API call that reads the same data, on the same server in the same run.

    python bench/bench_webui.py            # 1,000 models; a model of 10,000 versions
    python bench/bench_webui.py --small    # 200 models; 2,000 versions

1. The models page ``GET /`` of a registry of N models against ``GET /api/v1/models``
   (``regctl list``). Models are published through the core, one to three versions
   each, some promoted, names nested.
2. The model page ``GET /models/NAME`` of a model with M versions against
   ``GET /api/v1/models/NAME/-/versions`` (``regctl versions``). The big model is built
   by publishing v1 and laying v2..vM out as renumbered copies (hard links), each with
   its own metrics, plus one ``publish`` audit line per version, as a real history
   would have (the page reads the audit for the champion history); ``verify`` passes.

One keep-alive client, requests alternating between the page and the API call, median
of each after a warm-up; the page is fetched with a signed-in session, the API with a
bearer token. The model page reads each version's immutable facts (metrics, lineage)
once per server and the rows of its page from the core on every view, so its first
view, reported too, costs about one ``versions`` call more.
Target for both: page / API <= 1.5.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.core.tokens import Tokens  # noqa: E402
from registry_cli.server.launch import ServeRegistryProcess  # noqa: E402

ENV = dict(os.environ, NO_COLOR="1", REGCTL_ACTOR="bench")
BIG = "fleet/detector"


def publish_models(reg: ModelRegistry, weights: Path, count: int) -> None:
    for i in range(count):
        name = f"team{i % 10}/project{i % 37}/model-{i}"
        for v in range(1 + i % 3):
            reg.publish(name, [weights], metrics={"accuracy": 0.5 + v / 10, "loss": 1 / (v + 1)})
        if i % 4 == 0:
            reg.promote(name, reason="bench")


def lay_out_big_model(reg: ModelRegistry, weights: Path, count: int) -> None:
    """v1 published, v2..v``count`` renumbered hard-link copies with their own metrics."""
    reg.publish(BIG, [weights], metrics={"accuracy": 0.5, "loss": 1.0}, tags={"data": "d1"})
    assert isinstance(reg.root, Path)
    model = reg.root / "models" / BIG
    v1 = model / "v1"
    manifest = json.loads((v1 / "manifest.json").read_text())
    version_yaml = (v1 / "version.yaml").read_text()
    audit = []
    for n in range(2, count + 1):
        target = model / f"v{n}"
        shutil.copytree(v1, target, copy_function=os.link)
        for doc in ("manifest.json", "version.yaml"):
            (target / doc).unlink()
        metrics = {"accuracy": 0.5 + 0.4 * n / count + (n % 7) / 200, "loss": 1.0 - 0.8 * n / count}
        (target / "manifest.json").write_text(
            json.dumps({**manifest, "version": f"v{n}", "metrics": metrics}, indent=2) + "\n"
        )
        (target / "version.yaml").write_text(
            version_yaml.replace("\nversion: v1\n", f"\nversion: v{n}\n")
        )
        audit.append(
            {
                "time": manifest["created_at"],
                "actor": "bench",
                "action": "publish",
                "model": BIG,
                "version": f"v{n}",
                "details": {"stage": reg.stages[0], "files": 1, "source": "local"},
            }
        )
    state = json.loads((model / "model.yaml").read_text())
    state.update(
        next_version=count + 1,
        versions=f"1-{count}",
        latest={reg.stages[0]: f"v{count}"},
        aliases={"candidate": f"v{count}"},
    )
    (model / "model.yaml").write_text(json.dumps(state, indent=2) + "\n")
    with open(reg.root / "audit.jsonl", "a") as fh:
        fh.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in audit)
    reg.rebuild_dist()
    for v in (count // 4, count // 2, count - 10):
        reg.promote(BIG, version=v, reason=f"bench round {v}")


def sign_in(conn: http.client.HTTPConnection, token: str) -> str:
    """The session cookie of a browser that signed in with ``token``."""
    conn.request("GET", "/sign-in")
    reply = conn.getresponse()
    html = reply.read().decode()
    pre = reply.getheader("set-cookie", "").split(";")[0]
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    if not found:
        raise RuntimeError("no CSRF field on the sign-in page")
    body = urllib.parse.urlencode({"csrf": found.group(1), "token": token, "next": "/"})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": pre}
    conn.request("POST", "/sign-in", body=body, headers=headers)
    reply = conn.getresponse()
    reply.read()
    cookie = reply.getheader("set-cookie", "")
    if reply.status != 303 or not cookie.startswith("regctl_session="):
        raise RuntimeError(f"sign-in failed: HTTP {reply.status}")
    return cookie.split(";")[0]


def timed(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    conn.request("GET", path, headers=headers)
    reply = conn.getresponse()
    reply.read()
    elapsed = time.perf_counter() - started
    if reply.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {reply.status}")
    return elapsed


def compare(
    port: int, token: str, page: str, api: str, n: int, warm: int
) -> tuple[float, float, float]:
    """Medians of the page and of the API call, and the page's first (cold) view."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    cookie = {"Cookie": sign_in(conn, token)}
    bearer = {"Authorization": f"Bearer {token}"}
    first = timed(conn, page, cookie)
    for _ in range(warm):
        timed(conn, page, cookie)
        timed(conn, api, bearer)
    pages, apis = [], []
    for _ in range(n):
        pages.append(timed(conn, page, cookie))
        apis.append(timed(conn, api, bearer))
    conn.close()
    return statistics.median(pages), statistics.median(apis), first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smaller sizes, for a quick run")
    args = parser.parse_args()
    models, versions = (200, 2000) if args.small else (1000, 10_000)
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="regctl-bench-webui-", dir=base))
    try:
        weights = work / "w.pt"
        weights.write_bytes(os.urandom(4096))
        figures = {}
        for label, count in (("models", models), ("versions", versions)):
            root = work / label
            reg = ModelRegistry(root, actor="bench")
            reg.init()
            token = Tokens(reg.store, reg.states, "bench").create("bench", ["read"]).secret
            started = time.perf_counter()
            if label == "models":
                publish_models(reg, weights, count)
                page, api, n = "/", "/api/v1/models", 15
            else:
                lay_out_big_model(reg, weights, count)
                report = reg.verify(BIG)
                if not report.ok:
                    raise RuntimeError(f"the laid-out model does not verify: {report.problems[:3]}")
                page, api, n = f"/models/{BIG}", f"/api/v1/models/{BIG}/-/versions", 9
            print(
                f"built the {label} registry in {time.perf_counter() - started:.0f} s", flush=True
            )
            with ServeRegistryProcess(root, log=work / f"{label}.log", env=ENV) as srv:
                page_s, api_s, first_s = compare(srv.port, token, page, api, n, warm=2)
            ratio = page_s / api_s
            figures[label] = ratio
            what = f"{count:,} models" if label == "models" else f"a model of {count:,} versions"
            print(
                f"{what}: page {page} {page_s * 1000:.0f} ms, API {api} {api_s * 1000:.0f} ms "
                f"(medians of {n}), ratio {ratio:.2f} (target <= 1.5); "
                f"first view of the page {first_s * 1000:.0f} ms",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(r <= 1.5 for r in figures.values())
    print("all targets met" if ok else "some targets missed (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
