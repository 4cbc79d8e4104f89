"""Pull performance against curl, in one run, over FTP and HTTP (docs/performance.md,
"Distribution"; issues 4 and 13). Longer than ~400 lines: one script per bench, and
its three parts share the servers, the workers and the report.

A temporary registry gets a 1 GiB model and a 50 MiB model (``--small``: 128 MiB
and 8 MiB), both released, and is served over loopback by the real
``regctl serve-ftp`` and by nginx (a static server of the same ``dist/`` tree,
with sendfile, ``Range``, ``If-Range`` and ETags; skipped when nginx is not
installed: ``apt-get install nginx-light``). curl is the independent client of
both. Runs are interleaved (curl and each pull variant in a rotating order, the
page cache flushed in between) and medians compared.

1. One pull of the big model against ``curl -o file`` of the same payload file:
   - *pull per file*: ``Puller.pull`` end to end: LATEST.json, manifest.json,
     then the payload file downloaded once with inline sha256 into the cache and
     renamed into place (issue 13: target <= 1.3x);
   - *bundle download + verify*: the bundle into a temp file with inline sha256,
     size and sha256 checked (issue 4's metric, no unpack);
   - *pull --bundle*: the bundle path end to end (also unpack, per-file check);
   - *regctl pull*: the CLI process end to end (per file; also Python start-up).
2. 20 concurrent pulls of the mid model against 20 concurrent curls; aggregate
   throughput = 20 x size / wall time (target >= 0.6x). Each puller has its own
   cache (20 client machines). Pullers are 20 processes started (and imported)
   before the clock starts, released together; cold ``regctl pull`` processes
   are shown for reference. The server's own log counts the reads of
   LATEST.json and of the payload (one each per pull: no thundering herd), and
   20 pulls into one shared cache show the payload sent once.
3. Resume: a CLI pull of the big model is killed at ~50 %, then run again; the
   server's log gives the payload bytes the second run transferred, against the
   bytes that were still missing (target: <= remaining + one 1 MiB block).
4. Delta (issue 21): a model of the big model's size in 64 MiB shards plus one
   1 MiB file; v2 changes that file only. After a pull of v1, a pull of v2 into the
   same cache; the server's log gives every body byte it sent for that pull
   (documents included; target: <= the changed 1 MiB + 256 KiB).

Usage: python bench/bench_pull.py [--small] [--size MiB] [--runs N]
                                  [--only single|concurrent|resume|delta]
                                  [--transport ftp|http] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry_cli import ModelRegistry  # noqa: E402
from registry_cli.ftp.launch import ServeFtpProcess  # noqa: E402
from registry_cli.pull import Puller, parse_source  # noqa: E402
from registry_cli.storage.hashing import CHUNK  # noqa: E402

PASSWORD = "bench-pw"
MiB = 1 << 20
PAYLOAD = "release/{name}/versions/v1/payload/model.pt"
FTP_LOG_RE = re.compile(r"RETR (\S+) completed=\d bytes=(\d+)")


class Served:
    """One transport under test: how curl and regctl reach it, and what its log says."""

    def __init__(self, kind: str, url: str, log: Path, proc: Any) -> None:
        self.kind = kind
        self.url = url  # what `regctl pull --from` takes
        self.log = log
        self.proc = proc
        self.label = "FTP (regctl serve-ftp)" if kind == "ftp" else "HTTP (nginx)"

    def curl_cmd(self, relpath: str, out: Path) -> list[str]:
        if self.kind == "ftp":
            url = self.url.replace("mlops@", "") + f"/{relpath}"
            return ["curl", "-sS", "--fail", "--ftp-method", "nocwd", "-o", str(out)] + [
                "--user",
                f"mlops:{PASSWORD}",
                url,
            ]  # nocwd: one RETR of the full path, as regctl does (curl's default CWDs each folder)
        return ["curl", "-sS", "--fail", "-o", str(out), f"{self.url}/{relpath}"]

    def puller(self, cache: Path) -> Puller:
        return Puller(parse_source(self.url), password=PASSWORD, cache_root=cache)

    def spec(self) -> dict[str, str]:
        return {"kind": self.kind, "url": self.url}

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def sent(self, since: int) -> list[tuple[str, int]]:
        """``(path, body bytes)`` of every request logged after offset ``since``."""
        time.sleep(0.3)  # both servers log a request when it ends
        with open(self.log, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
        if self.kind == "ftp":  # pyftpdlib logs the real path: keep what follows dist/
            return [
                (m.group(1).split("/dist/", 1)[-1], int(m.group(2)))
                for m in FTP_LOG_RE.finditer(text)
            ]
        out = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                out.append((parts[0].lstrip("/"), int(parts[2])))
        return out

    def stop(self) -> None:
        if self.kind == "ftp":
            self.proc.stop()
        else:
            self.proc.send_signal(signal.SIGTERM)  # nginx: fast shutdown
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_ftp(root: Path, base: Path) -> Served:
    """The real ``regctl serve-ftp`` on a free loopback port."""
    server = ServeFtpProcess(
        root,
        "--user",
        "mlops",
        "--password-env",
        "BENCH_FTP_PW",
        "--max-cons-per-ip",
        "256",
        "--max-cons",
        "512",
        env={"BENCH_FTP_PW": PASSWORD},
        log=base / "serve-ftp.log",
    )
    try:
        server.start()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    return Served("ftp", f"ftp://mlops@127.0.0.1:{server.port}", server.log_path, server)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def start_nginx(dist: Path, base: Path) -> Served | None:
    """nginx serving ``dist/`` on a free loopback port (None: not installed)."""
    binary = nginx_binary()
    if binary is None:
        return None
    prefix = base / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = prefix / "access.log"
    user = "user root;" if os.geteuid() == 0 else ""
    temp = " ".join(
        f"{what}_temp_path {prefix}/tmp/{what};"
        for what in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format bench '$uri $status $body_bytes_sent "$http_range"';
  access_log {log} bench;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  {temp}
  server {{ listen 127.0.0.1:{port}; root {dist}; }}
}}
"""
    )
    proc = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
        stdout=subprocess.DEVNULL,
        stderr=open(prefix / "stderr.log", "wb"),  # noqa: SIM115 - the server's lifetime
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited: {(prefix / 'stderr.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return Served("http", f"http://127.0.0.1:{port}", log, proc)


# ---------------------------------------------------------------- the measured steps
def make_file(path: Path, size: int) -> Path:
    """``size`` bytes of incompressible data (a random 16 MiB block repeated)."""
    block = os.urandom(min(size, 16 * MiB))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
    return path


def settle(work: Path, size: int) -> None:
    """Flush dirty pages, then write and delete ``size`` bytes: every step starts with the
    same pool of freshly freed page-cache memory (on this VM a page left idle for a few
    seconds costs ~5x more to fill: the host takes it back), whatever ran before it."""
    os.sync()
    scratch = work / ".prime"
    block = bytes(MiB)
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size // MiB + 16):
            os.write(fd, block)
    finally:
        os.close(fd)
    scratch.unlink()


def curl(served: Served, relpath: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(served.curl_cmd(relpath, out), check=True)
    return time.perf_counter() - t0


def cli_pull(served: Served, name: str, cache: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "registry_cli", "pull", name, "--from", served.url]
        + ["--password-env", "BENCH_FTP_PW", "--cache-dir", str(cache), "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ, BENCH_FTP_PW=PASSWORD),
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"regctl pull failed ({proc.returncode}): {proc.stderr}")
    if json.loads(proc.stdout)["cached"]:
        raise SystemExit("unexpected cache hit: the bench needs a fresh cache per pull")
    return elapsed


def download_verify(served: Served, name: str, work: Path) -> float:
    """The bundle download + verify alone (issue 4), from connect to checked sha256."""
    t0 = time.perf_counter()
    puller = served.puller(work)
    transport = puller.open_transport()
    try:
        remote = puller.resolve(transport, "release", name, None)
        tmp = work / f".{name}.{os.getpid()}-{time.monotonic_ns()}.incomplete"
        puller.download_bundle(transport, "release", name, remote, tmp)
    finally:
        transport.close()
    elapsed = time.perf_counter() - t0
    tmp.unlink()
    return elapsed


def api_pull(served: Served, name: str, cache: Path, bundle: bool = False) -> float:
    t0 = time.perf_counter()
    result = served.puller(cache).pull(name, stage="release", bundle=bundle)
    if result.cached:
        raise SystemExit("unexpected cache hit: the bench needs a fresh cache per pull")
    return time.perf_counter() - t0


def _worker(kind: str, spec: dict, name: str, folder: str, ready: Any, go: Any, done: Any) -> None:
    """A pre-started client (imports done): says ``ready``, waits for ``go``, pulls once."""
    served = Served(spec["kind"], spec["url"], Path(), None)
    ready.put(os.getpid())
    go.wait()
    before = os.times()
    try:
        if kind == "shared":  # many pulls into one cache: all but one find it there
            served.puller(Path(folder)).pull(name, stage="release")
        else:
            api_pull(served, name, Path(folder), bundle=kind == "bundle")
        after = os.times()
        done.put(("ok", after.user + after.system - before.user - before.system))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        done.put(repr(exc))


def prestarted(
    kind: str, served: Served, name: str, work: Path, n: int, size: int
) -> tuple[float, float]:
    """Wall time of ``n`` pre-started processes pulling at once, and their CPU time."""
    ctx = multiprocessing.get_context("spawn")
    go, ready, done = ctx.Event(), ctx.Queue(), ctx.Queue()
    folders = [work / (f"{kind}-shared" if kind == "shared" else f"{kind}-{i}") for i in range(n)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    procs = [
        ctx.Process(target=_worker, args=(kind, served.spec(), name, str(f), ready, go, done))
        for f in folders
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=300)  # every worker has started and imported regctl
    settle(work, n * size)
    t0 = time.perf_counter()
    go.set()
    results = [done.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - t0
    for proc in procs:
        proc.join()
    for f in set(folders):
        shutil.rmtree(f)
    bad = [r for r in results if not isinstance(r, tuple)]
    if bad:
        raise SystemExit(f"{len(bad)} of {n} pulls failed: {bad[0]}")
    return elapsed, sum(r[1] for r in results)


def children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


# ---------------------------------------------------------------- the three parts
def single(served: Served, work: Path, size: int, runs: int) -> dict[str, list[float]]:
    def run_curl(i: int) -> float:
        out = work / "curl.out"
        cpu0 = children_cpu()
        elapsed = curl(served, PAYLOAD.format(name="big"), out)
        cpu["curl"].append(children_cpu() - cpu0)
        out.unlink()
        return elapsed

    def run_pull(kind: str, i: int) -> float:
        cache = work / f"{kind}-cache-{i}"
        if kind == "cli":
            elapsed = cli_pull(served, "big", cache)
        else:
            cpu0 = own_cpu()
            elapsed = api_pull(served, "big", cache, bundle=kind == "bundle")
            cpu[kind].append(own_cpu() - cpu0)
        shutil.rmtree(cache)
        return elapsed

    steps: dict[str, Any] = {
        "curl": run_curl,
        "api": lambda i: run_pull("api", i),
        "download_verify": lambda i: download_verify(served, "big", work),
        "bundle": lambda i: run_pull("bundle", i),
        "cli": lambda i: run_pull("cli", i),
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {"curl": [], "api": [], "bundle": []}
    order = list(steps)
    for i in range(runs):
        for key in order[i % len(order) :] + order[: i % len(order)]:  # rotate: no fixed order
            settle(work, 2 * size if key == "bundle" else size)  # what the step writes
            times[key].append(steps[key](i))
        print(
            f"  run {i + 1}: curl {times['curl'][-1]:.2f} s, pull per file "
            f"{times['api'][-1]:.2f} s ({times['api'][-1] / times['curl'][-1]:.2f}x), bundle "
            f"download+verify {times['download_verify'][-1]:.2f} s, pull --bundle "
            f"{times['bundle'][-1]:.2f} s, regctl pull {times['cli'][-1]:.2f} s",
            flush=True,
        )
    times.update({f"cpu_{k}": v for k, v in cpu.items()})
    return times


def concurrent(served: Served, work: Path, size: int, n: int, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: [] for k in ("curl", "api", "bundle", "cli", "shared", "cpu_curl", "cpu_api")
    }
    rel = PAYLOAD.format(name="mid")
    for r in range(runs):
        settle(work, n * size)
        cpu0 = children_cpu()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda i: curl(served, rel, work / f"c{i}.out"), range(n)))
        out["curl"].append(n * size / (time.perf_counter() - t0))
        out["cpu_curl"].append(children_cpu() - cpu0)
        for i in range(n):
            (work / f"c{i}.out").unlink()
        mark = served.log_size()
        wall, used = prestarted("api", served, "mid", work, n, size)
        out["api"].append(n * size / wall)
        out["cpu_api"].append(used)
        sent = served.sent(mark)
        out["latest_reads"] = sum(1 for p, _ in sent if p.endswith("mid/LATEST.json"))
        out["payload_bytes"] = sum(b for p, b in sent if p == rel)
        out["bundle"].append(n * size / prestarted("bundle", served, "mid", work, n, size)[0])
        mark = served.log_size()
        out["shared"].append(n * size / prestarted("shared", served, "mid", work, n, size)[0])
        sent = served.sent(mark)
        out["shared_payload_bytes"] = sum(b for p, b in sent if p == rel)
        settle(work, n * size)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda i, r=r: cli_pull(served, "mid", work / f"cc{r}-{i}"), range(n)))
        out["cli"].append(n * size / (time.perf_counter() - t0))
        for d in work.glob("cc*-*"):
            shutil.rmtree(d)
        print(
            f"  run {r + 1}: {n} curls {out['curl'][-1] / MiB:.0f} MiB/s; {n} pre-started "
            f"clients: pull per file {out['api'][-1] / MiB:.0f} MiB/s "
            f"({out['api'][-1] / out['curl'][-1]:.2f}x), pull --bundle "
            f"{out['bundle'][-1] / MiB:.0f} MiB/s, one shared cache "
            f"{out['shared'][-1] / MiB:.0f} MiB/s; {n} cold regctl pull "
            f"{out['cli'][-1] / MiB:.0f} MiB/s",
            flush=True,
        )
    return out


def resume(served: Served, work: Path, size: int) -> dict[str, float] | None:
    """Kill a CLI pull at ~50 %, pull again; what the second run transferred."""
    cache = work / "resume-cache"
    cmd = [sys.executable, "-m", "registry_cli", "pull", "big", "--from", served.url]
    cmd += ["--password-env", "BENCH_FTP_PW", "--cache-dir", str(cache), "--json"]
    env = dict(os.environ, BENCH_FTP_PW=PASSWORD)
    for _attempt in range(3):
        shutil.rmtree(cache, ignore_errors=True)
        settle(work, size)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        partial: Path | None = None
        while proc.poll() is None:
            found = partial or next(cache.rglob("model.pt.incomplete"), None)
            with_size = found.stat().st_size if found and found.exists() else 0
            partial = found
            if with_size >= size // 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait()
        if partial is not None and partial.exists():
            break
    else:
        print("  (the pull finished before it could be killed three times; no figure)")
        return None
    have = partial.stat().st_size
    settle(work, size)
    mark = served.log_size()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"resumed pull failed ({res.returncode}): {res.stderr}")
    sent = served.sent(mark)
    payload = sum(b for p, b in sent if p == PAYLOAD.format(name="big"))
    shutil.rmtree(cache)
    return {
        "have": have,
        "remaining": size - have,
        "payload": payload,
        "total": sum(b for _p, b in sent),
        "seconds": elapsed,
    }


SHARD = 64 * MiB


def publish_delta(reg: ModelRegistry, base: Path, size: int) -> None:
    """``delta`` v1 and v2 (released): shards of ``size - 1 MiB`` and head.bin (1 MiB),
    the only file v2 changes."""
    src = base / "src" / "delta"
    left, i = size - MiB, 0
    while left > 0:
        make_file(src / f"shard{i:03d}.bin", min(SHARD, left))
        left -= SHARD
        i += 1
    for _version in (1, 2):
        head = src / "head.bin"
        if head.exists():
            head.unlink()
        head.write_bytes(os.urandom(MiB))
        reg.publish("delta", [src])
        reg.promote("delta")
    shutil.rmtree(src)


def delta(served: Served, work: Path, size: int) -> dict[str, float]:
    """Pull delta v1, then v2 into the same cache: what the server sent for v2."""
    cache = work / "delta-cache"
    puller = served.puller(cache)
    puller.pull("delta", stage="release", version="v1")
    settle(work, MiB)
    mark = served.log_size()
    t0 = time.perf_counter()
    result = puller.pull("delta", stage="release")
    elapsed = time.perf_counter() - t0
    sent = served.sent(mark)
    if result.version != "v2" or result.cached:
        raise SystemExit(f"delta: expected a fresh v2, got {result}")
    shutil.rmtree(cache)
    return {
        "total": sum(b for _p, b in sent),
        "payload": sum(b for p, b in sent if "/payload/" in p),
        "requests": len(sent),
        "seconds": elapsed,
    }


# ---------------------------------------------------------------- report
def report_delta(d: dict[str, float], big: int) -> None:
    ok = d["total"] <= MiB + 256 * 1024
    print(
        f"  delta: v2 after v1 (1 MiB of {big // MiB} MiB changed): {d['total']} bytes sent "
        f"in {d['requests']:.0f} requests ({d['payload']} of payload; target <= 1 MiB + "
        f"256 KiB = {MiB + 256 * 1024}){' ok' if ok else ' MISSED'}, {d['seconds']:.2f} s"
    )


def report(
    served: Served, s: dict | None, c: dict | None, rs: dict | None, big: int, mid: int, n: int
) -> None:
    med = statistics.median
    print(f"\nresults over {served.label}")
    if s:
        curl_s = med(s["curl"])
        runs = len(s["curl"])
        per_run = sorted(a / b for a, b in zip(s["api"], s["curl"], strict=True))
        print(f"  one pull of a {big // MiB} MiB model (median of {runs})")
        rows = [
            ("curl -o file", "curl", "", False),
            ("pull per file, end to end", "api", "target <= 1.2: in the cache, verified", True),
            ("bundle: download + verify", "download_verify", "issue 4: target <= 1.5", True),
            ("pull --bundle, end to end", "bundle", "+ unpack, per-file check", False),
            ("regctl pull process, end to end", "cli", "+ Python start-up", False),
        ]
        for label, key, note, judged in rows:
            secs = med(s[key])
            if key == "curl":
                print(f"    {label:34} {secs:6.2f} s  ({big / secs / MiB:.0f} MiB/s)")
                continue
            ratio = secs / curl_s
            target = float(note.split("<= ")[1].split(":")[0]) if judged else None
            verdict = (" ok" if ratio <= target else " MISSED") if target else ""
            print(f"    {label:34} {secs:6.2f} s  ratio {ratio:.2f}  ({note}){verdict}")
        print(f"    (pull per file / curl, per run: {', '.join(f'{x:.2f}' for x in per_run)})")
        cc, ca, cb = med(s["cpu_curl"]), med(s["cpu_api"]), med(s["cpu_bundle"])
        print(
            f"    (client CPU time, no target: curl {cc:.2f} s, pull per file {ca:.2f} s = "
            f"{ca / cc:.2f}x, pull --bundle {cb:.2f} s = {cb / cc:.2f}x; servers not counted)"
        )
    if c:
        curl_bps = med(c["curl"])
        print(f"  {n} concurrent pulls of a {mid // MiB} MiB model, aggregate (median of "
              f"{len(c['curl'])})")  # fmt: skip
        for label, key, note in (
            (f"{n} curls", "curl", ""),
            (f"{n} clients: pull per file", "api", "target >= 0.6"),
            (f"{n} clients: pull --bundle", "bundle", "+ unpack, per-file check"),
            (f"{n} pulls into one shared cache", "shared", f"one download, {n - 1} cache hits"),
            (f"{n} cold regctl pull processes", "cli", f"+ {n} Python start-ups"),
        ):
            ratio = med(c[key]) / curl_bps
            extra = f"  ratio {ratio:.2f}  ({note})" if key != "curl" else ""
            if key == "api":
                extra += " ok" if ratio >= 0.6 else " MISSED"
            print(f"    {label:34} {med(c[key]) / MiB:6.0f} MiB/s{extra}")
        cc, ca = med(c["cpu_curl"]), med(c["cpu_api"])
        print(
            f"    (client CPU time, no target: {n} curls {cc:.2f} s, {n} pulls per file "
            f"{ca:.2f} s = {ca / cc:.2f}x; servers not counted)"
        )
        print(
            f"    server log, {n} pulls per file: LATEST.json read {c['latest_reads']} times, "
            f"payload sent {c['payload_bytes'] / mid:.2f}x its size; one shared cache: "
            f"payload sent {c['shared_payload_bytes'] / mid:.2f}x"
        )
    if rs:
        excess = rs["payload"] - rs["remaining"]
        ok = 0 <= excess <= CHUNK  # fewer bytes than were missing: the log was misread
        print(
            f"  resume: killed at {rs['have'] / big:.0%} ({rs['have'] / MiB:.1f} MiB kept); the "
            f"next pull transferred {rs['payload'] / MiB:.1f} MiB of payload for "
            f"{rs['remaining'] / MiB:.1f} MiB missing (excess {excess} bytes, target <= one "
            f"{CHUNK // MiB} MiB block){' ok' if ok else ' MISSED'}; {rs['total']} bytes in all "
            f"requests, {rs['seconds']:.2f} s"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="128 MiB and 8 MiB: a quick run")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs per measurement")
    ap.add_argument("--concurrency", type=int, default=20, help="concurrent pulls")
    ap.add_argument(
        "--only", choices=["single", "concurrent", "resume", "delta"], help="one part only"
    )
    ap.add_argument("--transport", choices=["ftp", "http"], help="one transport only")
    ap.add_argument("--mid-mib", type=int, help="size of the model pulled concurrently")
    ap.add_argument("--size", type=int, metavar="MiB", help="size of the big model (and delta)")
    ap.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    args = ap.parse_args()
    if shutil.which("curl") is None:
        print("curl is not installed; skipping")
        return 0
    big = (args.size or (128 if args.small else 1024)) * MiB
    mid = (args.mid_mib or (8 if args.small else 50)) * MiB
    base = Path(tempfile.mkdtemp(prefix="regctl-bench-pull-", dir=args.dir))
    os.chmod(base, 0o755)  # nginx's worker reads the tree
    results = []
    try:
        root = base / "registry"
        reg = ModelRegistry(root, actor="bench")
        print(
            f"publishing {big // MiB} MiB and {mid // MiB} MiB models into {root} ...", flush=True
        )
        for name, size in (("big", big), ("mid", mid)):
            src = make_file(base / "src" / name / "model.pt", size)
            reg.publish(name, [src])
            reg.promote(name)
            shutil.rmtree(base / "src" / name)
        if args.only in (None, "delta"):
            publish_delta(reg, base, big)
        latest = json.loads((root / "dist/release/big/LATEST.json").read_text())
        if "manifest_sha256" not in latest:
            raise SystemExit("the served tree has no manifest_sha256: no per-file pull to measure")
        work = base / "work"
        work.mkdir()
        kinds = [args.transport] if args.transport else ["ftp", "http"]
        for kind in kinds:
            served = start_ftp(root, base) if kind == "ftp" else start_nginx(root / "dist", base)
            if served is None:
                print("nginx is not installed: no HTTP figures (apt-get install nginx-light)")
                continue
            try:
                s = c = rs = d = None
                if args.only in (None, "single"):
                    print(f"1. {served.label}: one pull of {big // MiB} MiB vs curl -o file "
                          f"({args.runs} interleaved runs)", flush=True)  # fmt: skip
                    s = single(served, work, big, args.runs)
                if args.only in (None, "concurrent"):
                    print(f"2. {served.label}: {args.concurrency} concurrent pulls of "
                          f"{mid // MiB} MiB vs {args.concurrency} curls", flush=True)  # fmt: skip
                    c = concurrent(served, work, mid, args.concurrency, max(1, args.runs - 1))
                if args.only in (None, "resume"):
                    print(f"3. {served.label}: a pull killed at ~50 %, resumed", flush=True)
                    rs = resume(served, work, big)
                if args.only in (None, "delta"):
                    print(f"4. {served.label}: delta pull of v2 after v1", flush=True)
                    d = delta(served, work, big)
            finally:
                served.stop()
            results.append((served, s, c, rs, d))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for served, s, c, rs, d in results:
        report(served, s, c, rs, big, mid, args.concurrency)
        if d:
            report_delta(d, big)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
