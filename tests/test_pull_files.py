"""Per-file pull (docs/pull.md): manifest authenticated by ``manifest_sha256``, each payload file
fetched once and checked, resume (HTTP Range + If-Range, FTP REST), parallel files,
http(s):// sources with a token, and the bundle as the fallback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.client import ModelRegistryClient
from tests.conftest import regctl_cmd
from tests.ftp_helpers import PASSWORD, FtpServer, make_tls_cert
from tests.http_static import StaticServer, add_manifest_sha256, drop_manifest_sha256

MiB = 1 << 20


@pytest.fixture
def tree(root, tmp_path):
    """faq-bot v1 (released, one file) and v2 (dev, six files); big v1 (released, 8 MiB)."""
    reg = ModelRegistry(root)
    one = tmp_path / "src" / "one"
    one.mkdir(parents=True)
    (one / "model.pt").write_bytes(os.urandom(300_000))
    reg.publish("faq-bot", [one / "model.pt"])
    two = tmp_path / "src" / "two" / "weights"
    (two / "sub").mkdir(parents=True)
    for i in range(5):
        (two / f"part{i}.bin").write_bytes(os.urandom(200_000 + i))
    (two / "sub" / "model-standard.pt").write_bytes(os.urandom(1000))
    reg.publish("faq-bot", [two])
    reg.promote("faq-bot", version="v1")
    big = tmp_path / "src" / "big"
    big.mkdir(parents=True)
    (big / "model.pt").write_bytes(os.urandom(8 * MiB))
    reg.publish("big", [big / "model.pt"])
    reg.promote("big")
    add_manifest_sha256(root / "dist")
    return reg


def cache_files(cache: Path) -> list[str]:
    """Every file in the cache except the best-effort lock files."""
    out = []
    for dirpath, _dirs, files in os.walk(cache):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), cache)
            if "/.locks/" not in f"/{rel}":
                out.append(rel)
    return sorted(out)


def replace_served(root: Path, rel: str, data: bytes) -> Path:
    """Replace a served file (a hard link into models/) with other bytes."""
    path = root / "dist" / rel
    os.unlink(path)
    path.write_bytes(data)
    return path


def run_pull(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        regctl_cmd("pull", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
        stdin=subprocess.DEVNULL,
    )


def payload_requests(server: StaticServer) -> list[str]:
    return [p for p in server.paths if "/payload/" in p]


# ---------------------------------------------------------------- the happy paths
def test_per_file_pull_over_http_fetches_each_file_once_and_no_bundle(tree, root, cli, tmp_path):
    cache = tmp_path / "c"
    with StaticServer(root / "dist") as web:
        web.delay_per_chunk = 0.02  # slow enough that parallel transfers overlap
        res = cli(
            "pull", "faq-bot", "--stage", "dev", "--from", web.url,
            "--cache-dir", str(cache), "--json", root_dir=None,
        )  # fmt: skip
        assert res.exit_code == 0, res.stderr
        assert not any(p.endswith("bundle.tar.gz") for p in web.paths)
        assert sorted(payload_requests(web)) == sorted(
            f"/dev/faq-bot/versions/v2/{f['path']}" for f in tree.get("faq-bot:v2").files
        )
        assert 2 <= web.max_inflight <= 4  # files in parallel, bounded
    doc = json.loads(res.stdout)
    assert doc["version"] == "v2" and doc["cached"] is False
    assert doc["sha256"] == tree.get("faq-bot:v2").bundle["sha256"]  # still the bundle's
    vdir = Path(doc["path"])
    assert vdir == cache / "regctl" / f"http_127.0.0.1_{web.port}" / "dev" / "faq-bot" / "v2"
    assert doc["preferred_weight_path"] == str(vdir / "payload/weights/sub/model-standard.pt")
    for f in tree.get("faq-bot:v2").files:
        data = (vdir / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert not os.stat(vdir / f["path"]).st_mode & 0o222
    assert (vdir / "manifest.json").read_bytes() == (
        root / "dist/dev/faq-bot/versions/v2/manifest.json"
    ).read_bytes()
    here = f"regctl/http_127.0.0.1_{web.port}/dev/faq-bot/v2"
    names = [f["path"] for f in tree.get("faq-bot:v2").files]
    shas = {f["sha256"] for f in tree.get("faq-bot:v2").files}
    assert cache_files(cache) == sorted(
        [f"{here}/{n}" for n in names]
        + [f"{here}/manifest.json", f"{here}/.regctl-pull.json"]
        + [f"regctl/blobs/sha256/{s[:2]}/{s}" for s in shas]
    )  # nothing hidden or partial left; each file also once in the blob cache


def test_bundle_flag_and_trees_without_the_key_use_the_bundle(tree, root, cli, tmp_path):
    # a plain static server has no bundle it could assemble: the tree gets bundle files
    assert cli("dist", "rebuild", "--bundles", root_dir=root).exit_code == 0
    with StaticServer(root / "dist") as web:
        res = cli(
            "pull", "faq-bot", "--from", web.url, "--bundle",
            "--cache-dir", str(tmp_path / "a"), "--json", root_dir=None,
        )  # fmt: skip
        assert res.exit_code == 0, res.stderr
        assert web.paths[-1] == "/release/faq-bot/versions/v1/bundle.tar.gz"
        assert payload_requests(web) == []
    old = tmp_path / "old-root"
    reg = ModelRegistry(old)
    src = tmp_path / "src" / "m.pt"
    src.write_bytes(b"weights" * 1000)
    reg.publish("m", [src])
    assert cli("dist", "rebuild", "--bundles", root_dir=old).exit_code == 0
    drop_manifest_sha256(old / "dist")  # a tree as written before manifest_sha256
    with StaticServer(old / "dist") as web:
        res = cli(
            "pull", "m", "--stage", "dev", "--from", web.url,
            "--cache-dir", str(tmp_path / "b"), "--json", root_dir=None,
        )  # fmt: skip
        assert res.exit_code == 0, res.stderr
        assert web.paths[-1].endswith("/versions/v1/bundle.tar.gz")
        assert payload_requests(web) == []


def test_per_file_pull_from_a_folder_and_offline_afterwards(tree, root, cli, tmp_path):
    cache = tmp_path / "c"
    res = cli("pull", "faq-bot", "--stage", "dev", "--from", str(root),
              "--cache-dir", str(cache), "--json", root_dir=None)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    first = json.loads(res.stdout)
    again = json.loads(
        cli(
            "pull",
            "faq-bot",
            "--stage",
            "dev",
            "--from",
            str(root),
            "--cache-dir",
            str(cache),
            "--json",
            root_dir=None,
        ).stdout  # fmt: skip
    )
    assert again["cached"] is True and again["path"] == first["path"]
    offline = cli("pull", "faq-bot", "--stage", "dev", "--from", str(root / "nowhere"),
                  "--cache-dir", str(cache), "--offline", "--json", root_dir=None)  # fmt: skip
    assert offline.exit_code == 3  # another source: its own cache folder, empty
    with StaticServer(root / "dist") as web:
        url = web.url
        assert cli("pull", "faq-bot", "--from", url, "--cache-dir", str(cache),
                   root_dir=None).exit_code == 0  # fmt: skip
    offline = cli("pull", "faq-bot", "--from", url, "--cache-dir", str(cache), "--offline",
                  "--json", root_dir=None)  # fmt: skip
    assert offline.exit_code == 0, offline.stderr  # the server is gone: the cache serves
    assert json.loads(offline.stdout)["version"] == "v1"


def test_registry_server_root_url_token_and_python_client(tree, root, cli, tmp_path):
    """A serve-registry root (health at /api/v1/health, the tree under /dist/), a token."""
    with StaticServer(root / "dist", prefix="/dist", token="t0k", registry_health=True) as web:
        base = f"http://127.0.0.1:{web.port}"
        args = ("pull", "faq-bot", "--from", base, "--cache-dir", str(tmp_path / "c"))
        refused = cli(*args, root_dir=None)
        assert refused.exit_code == 6 and "401" in refused.stderr and "token" in refused.stderr
        os.environ["MY_TOKEN"] = "t0k"
        ok = cli(*args, "--token-env", "MY_TOKEN", "--json", root_dir=None)
        assert ok.exit_code == 0, ok.stderr
        unset = cli(*args, "--token-env", "NOT_SET_ANYWHERE", root_dir=None)
        assert unset.exit_code == 2 and "NOT_SET_ANYWHERE" in unset.stderr
        os.environ["REGCTL_TOKEN"] = "t0k"
        try:
            client = ModelRegistryClient(base, cache_dir=tmp_path / "py")
            bundle = client.get("release", "faq-bot")
        finally:
            del os.environ["REGCTL_TOKEN"]
        assert bundle.version == "v1" and not bundle.cached
        assert (
            bundle.preferred_weight_path.read_bytes()
            == (tree.get("faq-bot:v1").path / "payload/model.pt").read_bytes()
        )
        assert "t0k" not in refused.stderr + ok.stdout + ok.stderr


def test_https_needs_the_ca(tree, root, cli, tmp_path):
    cert, key = make_tls_cert(tmp_path / "tls")
    with StaticServer(root / "dist", tls=(cert, key)) as web:
        args = ("pull", "faq-bot", "--from", web.url)
        untrusted = cli(*args, "--cache-dir", str(tmp_path / "a"), root_dir=None)
        assert untrusted.exit_code == 6 and "--ca-cert" in untrusted.stderr
        ok = cli(*args, "--ca-cert", str(cert), "--cache-dir", str(tmp_path / "b"), root_dir=None)
        assert ok.exit_code == 0, ok.stderr


def test_s3_without_credentials_is_one_line_exit_6(cli, monkeypatch, tmp_path):
    """s3:// sources (see docs/object-storage.md): no credentials is
    one line with a hint, exit 6, and nothing in the cache."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("REGCTL_S3_ENDPOINT_URL", "http://127.0.0.1:9")  # loopback only
    cache = tmp_path / "c"
    s3 = cli("pull", "faq-bot", "--from", "s3://bucket/prefix", "--cache-dir", str(cache),
             root_dir=None)  # fmt: skip
    assert s3.exit_code == 6, s3.stderr
    assert s3.stderr.startswith("error: ") and "credentials" in s3.stderr
    assert "Traceback" not in s3.stderr
    assert cache_files(cache) == []


def test_curl_agrees_with_the_test_server_on_ranges(tree, root, tmp_path):
    """The static server's Range support, checked by an independent client."""
    rel = "release/big/versions/v1/payload/model.pt"
    data = (root / "dist" / rel).read_bytes()
    with StaticServer(root / "dist") as web:
        out = subprocess.run(
            ["curl", "-sS", "--fail", "-r", "1000-", f"{web.url}/{rel}"],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
    assert out == data[1000:]


# ---------------------------------------------------------------- resume
def _partial_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*.incomplete") if p.is_file()]


@pytest.mark.slow
def test_a_pull_killed_halfway_resumes_with_the_rest_only(tree, root, tmp_path):
    size = tree.get("big:v1").files[0]["size"]
    cache = tmp_path / "c"
    with StaticServer(root / "dist") as web:
        web.delay_per_chunk = 0.01  # ~6 MiB/s: time to stop it halfway
        proc = subprocess.Popen(
            regctl_cmd("pull", "big", "--from", web.url, "--cache-dir", str(cache)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parts = _partial_files(cache)
            if parts and parts[0].stat().st_size >= size // 2:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kept = _partial_files(cache)
        assert len(kept) == 1
        have = kept[0].stat().st_size
        assert size // 2 <= have < size
        assert any(part.startswith(".") for part in kept[0].relative_to(cache).parts)  # hidden
        vdir = cache / "regctl" / f"http_127.0.0.1_{web.port}" / "release" / "big" / "v1"
        assert not vdir.exists()  # never a torn version in the cache
        web.delay_per_chunk = 0.0
        web.reset_counts()
        res = run_pull("big", "--from", web.url, "--cache-dir", str(cache), "--json")
        assert res.returncode == 0, res.stderr
        assert web.sent <= 0.6 * size, (web.sent, size)
        # exactly the remaining bytes of the payload (Range from where it stopped)
        assert web.sent_to["/release/big/versions/v1/payload/model.pt"] == size - have
    data = (vdir / "payload/model.pt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == tree.get("big:v1").files[0]["sha256"]
    assert _partial_files(cache) == []
    assert sorted(os.listdir(vdir.parent)) == ["v1"]


def _seed_partial(cache: Path, source_key: str, tree: ModelRegistry, data: bytes) -> Path:
    """A parked work folder as a killed pull of big:v1 leaves it, holding ``data``."""
    msha = hashlib.sha256(
        (tree.root / "dist/release/big/versions/v1/manifest.json").read_bytes()
    ).hexdigest()
    part = (
        cache / "regctl" / source_key / "release" / "big" / f".v1.{msha[:16]}.partial"
        / "payload" / "model.pt.incomplete"
    )  # fmt: skip
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    return part


@pytest.mark.slow
def test_ftp_resume_uses_rest_and_a_stale_prefix_starts_over(tree, root, tmp_path):
    real = (root / "dist/release/big/versions/v1/payload/model.pt").read_bytes()
    env = {"FTP_PW": PASSWORD}
    with FtpServer(root, "--user", "mlops", "--password-env", "FTP_PW", env=env) as srv:
        key = f"127.0.0.1_{srv.port}"
        cache = tmp_path / "c"
        _seed_partial(cache, key, tree, real[: len(real) // 2])
        args = ("big", "--from", srv.user_url(), "--password-env", "FTP_PW", "--json")
        res = run_pull(*args, "--cache-dir", str(cache), env=env)
        assert res.returncode == 0, res.stderr
        sent = [int(n) for n in _retr_bytes(srv.log, "payload/model.pt")]
        assert sent == [len(real) - len(real) // 2]  # REST: only the second half
        stale = tmp_path / "stale"
        _seed_partial(stale, key, tree, os.urandom(len(real) // 2))
        res = run_pull(*args, "--cache-dir", str(stale), env=env)
        assert res.returncode == 0, res.stderr  # the wrong prefix was dropped, not trusted
        vdir = Path(json.loads(res.stdout)["path"])
        assert (vdir / "payload/model.pt").read_bytes() == real
        assert _partial_files(stale) == []


def _retr_bytes(log: str, suffix: str) -> list[str]:
    out = []
    for line in log.splitlines():
        if "RETR" in line and suffix in line and "completed=1" in line:
            out.append(line.rsplit("bytes=", 1)[1].split()[0])
    return out


# ---------------------------------------------------------------- refused, nothing cached
def _pull_fails(cli, url: str, cache: Path, code: int, *extra: str) -> str:
    res = cli("pull", "big", "--from", url, "--cache-dir", str(cache), *extra, root_dir=None)
    assert res.exit_code == code, (res.exit_code, res.stderr)
    return res.stderr


def test_tampered_payload_file_is_exit_5_and_nothing_is_cached(tree, root, cli, tmp_path):
    rel = "release/big/versions/v1/payload/model.pt"
    data = bytearray((root / "dist" / rel).read_bytes())
    data[len(data) // 3] ^= 1
    replace_served(root, rel, bytes(data))
    with StaticServer(root / "dist") as web:
        err = _pull_fails(cli, web.url, tmp_path / "c", 5)
    assert "sha256" in err
    assert cache_files(tmp_path / "c") == []


@pytest.mark.parametrize("how", ["tampered", "dotdot", "absolute"])
def test_bad_manifests_are_exit_5(tree, root, cli, tmp_path, how):
    rel = "release/big/versions/v1/manifest.json"
    doc = json.loads((root / "dist" / rel).read_text())
    if how == "tampered":
        doc["files"][0]["sha256"] = "0" * 64
        replace_served(root, rel, json.dumps(doc).encode())  # the recorded key no longer fits
    else:
        doc["files"][0]["path"] = "payload/../../x" if how == "dotdot" else "/etc/x"
        data = json.dumps(doc).encode()
        replace_served(root, rel, data)
        add_manifest_sha256(root / "dist")  # a hostile server vouches for it
    with StaticServer(root / "dist") as web:
        _pull_fails(cli, web.url, tmp_path / "c", 5)
    assert cache_files(tmp_path / "c") == []
    assert not list(tmp_path.rglob("x"))


@pytest.mark.parametrize("change", ["shorter", "longer"])
def test_a_file_of_another_length_is_exit_5(tree, root, cli, tmp_path, change):
    rel = "release/big/versions/v1/payload/model.pt"
    data = (root / "dist" / rel).read_bytes()
    replace_served(root, rel, data[:-10] if change == "shorter" else data + b"0123456789")
    with StaticServer(root / "dist") as web:
        _pull_fails(cli, web.url, tmp_path / "c", 5)
    assert cache_files(tmp_path / "c") == []


def test_a_cut_transfer_is_exit_6_and_kept_for_the_resume(tree, root, cli, tmp_path):
    with StaticServer(root / "dist") as web:
        web.fault = "short"
        err = _pull_fails(cli, web.url, tmp_path / "c", 6)
        assert "cut" in err
        assert [p.name for p in _partial_files(tmp_path / "c")] == ["model.pt.incomplete"]
        web.fault = None
        web.reset_counts()
        assert cli("pull", "big", "--from", web.url, "--cache-dir", str(tmp_path / "c"),
                   root_dir=None).exit_code == 0  # fmt: skip
        assert web.sent <= 0.5 * 8 * MiB + 64 * 1024


def test_a_206_with_the_wrong_range_is_exit_5(tree, root, cli, tmp_path):
    real = (root / "dist/release/big/versions/v1/payload/model.pt").read_bytes()
    with StaticServer(root / "dist") as web:
        _seed_partial(tmp_path / "c", f"http_127.0.0.1_{web.port}", tree, real[:1000])
        web.fault = "wrong-range"
        err = _pull_fails(cli, web.url, tmp_path / "c", 5)
    assert "wrong range" in err
    assert cache_files(tmp_path / "c") == []


def test_a_changed_file_under_the_same_name_is_exit_5(tree, root, cli, tmp_path):
    """The resume's If-Range no longer matches: the whole new file comes, and fails the
    manifest (which still names the old bytes)."""
    rel = "release/big/versions/v1/payload/model.pt"
    real = (root / "dist" / rel).read_bytes()
    with StaticServer(root / "dist") as web:
        part = _seed_partial(tmp_path / "c", f"http_127.0.0.1_{web.port}", tree, real[:4096])
        st = (root / "dist" / rel).stat()
        part.with_name("model.pt.incomplete-etag").write_text(
            f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'
        )
        replace_served(root, rel, os.urandom(len(real)))
        web.reset_counts()
        _pull_fails(cli, web.url, tmp_path / "c", 5)
        assert web.sent >= len(real) - 4096  # If-Range failed: the whole file was sent
    assert cache_files(tmp_path / "c") == []


def test_concurrent_per_file_pulls_without_locks_all_succeed(tree, root, tmp_path, monkeypatch):
    """Correctness does not depend on the lock: each run works in its own folder."""
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    from registry_cli import pull as pull_mod

    monkeypatch.setattr(
        pull_mod.Puller, "_best_effort_lock", lambda self, *a: contextlib.nullcontext()
    )
    with StaticServer(root / "dist") as web:
        web.delay_per_chunk = 0.002
        pullers = [
            pull_mod.Puller(pull_mod.parse_source(web.url), cache_root=tmp_path / "c")
            for _ in range(6)
        ]
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda p: p.pull("faq-bot", stage="dev"), pullers))
    assert {r.path for r in results} == {results[0].path}
    assert sum(not r.cached for r in results) >= 1
    assert sorted(os.listdir(results[0].path.parent)) == ["v2"]  # no work folder left


def test_the_bundle_download_resumes_too(tree, root, cli, tmp_path):
    """pull --bundle (and trees without manifest_sha256) resume the same way."""
    info = tree.get("big:v1").bundle
    assert cli("dist", "rebuild", "--bundles", root_dir=root).exit_code == 0  # a static server
    data = (root / "dist/release/big/versions/v1/bundle.tar.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    with StaticServer(root / "dist") as web:
        part = (
            tmp_path / "c" / "regctl" / f"http_127.0.0.1_{web.port}" / "release" / "big"
            / f".v1.bundle-{info['sha256'][:16]}.partial" / "bundle.tar.gz.incomplete"
        )  # fmt: skip
        part.parent.mkdir(parents=True)
        part.write_bytes(data[: len(data) // 2])
        res = cli("pull", "big", "--from", web.url, "--bundle", "--cache-dir",
                  str(tmp_path / "c"), "--json", root_dir=None)  # fmt: skip
        assert res.exit_code == 0, res.stderr
        assert web.sent_to["/release/big/versions/v1/bundle.tar.gz"] == len(data) - len(data) // 2
    vdir = Path(json.loads(res.stdout)["path"])
    assert sorted(os.listdir(vdir.parent)) == ["v1"]  # the work folder is gone
    assert (
        hashlib.sha256((vdir / "payload/model.pt").read_bytes()).hexdigest()
        == (tree.get("big:v1").files[0]["sha256"])
    )


@pytest.mark.slow
def test_a_dot_file_serve_ftp_hides_comes_through_the_bundle(root, tmp_path):
    """serve-ftp never serves dot-entries; a payload with one still pulls (from the bundle)."""
    reg = ModelRegistry(root)
    src = tmp_path / "src" / "m"
    src.mkdir(parents=True)
    (src / "model.pt").write_bytes(os.urandom(5000))
    (src / ".settings").write_bytes(b"hidden")
    reg.publish("dotty", [src])
    add_manifest_sha256(root / "dist")
    with FtpServer(root, "--anonymous") as srv:
        res = run_pull("dotty", "--stage", "dev", "--from", srv.url, "--json",
                       "--cache-dir", str(tmp_path / "c"))  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert "bundle.tar.gz" in srv.log
    vdir = Path(json.loads(res.stdout)["path"])
    assert (vdir / "payload/m/.settings").read_bytes() == b"hidden"
    assert sorted(os.listdir(vdir.parent)) == ["v1"]


@pytest.mark.parametrize("overlap", [0.0, float("inf")])
def test_hashing_sink_hashes_in_order_whether_or_not_it_uses_the_helper(
    tmp_path, monkeypatch, overlap
):
    """The sink switches between hashing on its helper thread and on the caller's (it
    starts on the caller's; then ``overlap`` 0: always the helper; inf: the caller's
    between probes of the helper); the file and the sha256 are the same either way."""
    from registry_cli.storage import streams

    monkeypatch.setattr(streams, "WINDOW", 2)
    monkeypatch.setattr(streams, "PROBE", 3)
    monkeypatch.setattr(streams, "OVERLAP", overlap)
    chunks = [os.urandom(1000 + i) for i in range(40)]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        sink = streams.HashingSink(fd)
        modes = []  # hashed on the caller's thread next?
        for chunk in chunks:
            sink.submit(memoryview(bytearray(chunk)))
            modes.append(sink._inline)
        size, digest = sink.finish()
    finally:
        os.close(fd)
    data = b"".join(chunks)
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "out").read_bytes() == data
    assert modes[0] is True  # the first window, on the caller's thread
    assert set(modes[1:]) == ({False} if overlap == 0.0 else {False, True})


def test_the_pump_never_reuses_a_buffer_still_being_hashed(tmp_path, monkeypatch):
    """With the helper hashing slowly, the receiving side runs ahead into reused
    buffers; the sha256 must still be that of the bytes received."""
    import io

    from registry_cli.storage import streams

    monkeypatch.setattr(streams, "WINDOW", 1)
    monkeypatch.setattr(streams, "PROBE", 1)
    monkeypatch.setattr(streams, "OVERLAP", 0.0)  # the helper from the second chunk on
    slow = streams.HashingSink._hash

    def slow_hash(self, data):
        time.sleep(0.01)
        slow(self, data)

    monkeypatch.setattr(streams.HashingSink, "_hash", slow_hash)
    data = os.urandom(6 * MiB + 12345)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size, digest = streams.pump(io.BytesIO(data).readinto, fd)
    finally:
        os.close(fd)
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "out").read_bytes() == data
