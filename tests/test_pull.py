"""``regctl pull`` and the Python client: from a folder and from the real FTP server."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli import pull as pull_mod
from registry_cli.client import (
    FtpModelClientConfig,
    ModelRegistryClient,
    get_ftp_model_registry_client,
)
from registry_cli.pull import cache as pull_cache
from tests.cas_helpers import bundle_bytes
from tests.conftest import regctl_cmd
from tests.ftp_helpers import PASSWORD, FtpServer, make_tls_cert

PW_ENV = {"FTP_PW": PASSWORD}
USER_ARGS = ("--user", "mlops", "--password-env", "FTP_PW", "--login-delay", "0.1")


@pytest.fixture
def served(root, tmp_path):
    """faq-bot v1 (released, model.pt) and v2 (dev, with model-standard.pt and a program)."""
    reg = ModelRegistry(root)
    one = tmp_path / "src" / "one"
    one.mkdir(parents=True)
    (one / "model.pt").write_bytes(os.urandom(300_000))
    reg.publish("faq-bot", [one / "model.pt"])
    two = tmp_path / "src" / "two" / "weights"
    (two / "sub").mkdir(parents=True)
    (two / "a.pth").write_bytes(os.urandom(1000))
    (two / "model.pt2").write_bytes(os.urandom(1000))
    (two / "sub" / "model-standard.pt").write_bytes(os.urandom(1000))
    reg.publish("faq-bot", [two])
    reg.promote("faq-bot", version="v1")
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


def run_pull(
    *args: str, env: dict[str, str] | None = None, root: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    pre = ["--root", str(root)] if root else []
    return subprocess.run(
        regctl_cmd(*pre, "pull", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
        stdin=subprocess.DEVNULL,
    )


# ---------------------------------------------------------------- cache location
def test_default_cache_is_the_torch_hub_dir(monkeypatch, tmp_path):
    import sys

    torch_was_loaded = "torch" in sys.modules  # other tests in this process may load it
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert pull_mod.resolve_cache_root() == tmp_path / "th" / "hub"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pull_mod.resolve_cache_root() == tmp_path / "xdg" / "torch" / "hub"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert pull_mod.resolve_cache_root() == Path.home() / ".cache" / "torch" / "hub"
    monkeypatch.setenv("REGCTL_CACHE_DIR", str(tmp_path / "env"))
    assert pull_mod.resolve_cache_root() == tmp_path / "env"
    assert pull_mod.resolve_cache_root(tmp_path / "flag") == tmp_path / "flag"
    # computed without importing torch (a fresh interpreter checks it too, below)
    assert ("torch" in sys.modules) == torch_was_loaded


def test_cache_root_does_not_import_torch():
    code = (
        "import sys; from registry_cli.pull import resolve_cache_root; "
        "resolve_cache_root(); import registry_cli.client; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([os.sys.executable, "-c", code], check=True, timeout=60)


def test_source_urls():
    s = pull_mod.parse_source("ftp://mlops@10.1.2.3:2121")
    assert (s.host, s.port, s.user, s.tls, s.key) == (
        "10.1.2.3",
        2121,
        "mlops",
        False,
        "10.1.2.3_2121",
    )
    assert pull_mod.parse_source("ftps://h").port == 2121 and pull_mod.parse_source("ftps://h").tls
    assert pull_mod.parse_source("ftp://[::1]:21").key == "--1_21"
    from registry_cli import BadInput

    with pytest.raises(BadInput, match="password"):
        pull_mod.parse_source("ftp://mlops:secret@host:2121")
    with pytest.raises(BadInput, match="unsupported source"):
        pull_mod.parse_source("gopher://host/x")
    s3 = pull_mod.parse_source("s3://ml-models/registry")  # a root: its dist/
    assert (s3.kind, s3.host, s3.base, s3.display) == (
        "s3",
        "ml-models",
        "registry/dist",
        "s3://ml-models/registry/dist",
    )
    assert pull_mod.parse_source("s3://ml-models/x/dist").base == "x/dist"
    with pytest.raises(BadInput, match="credentials"):
        pull_mod.parse_source("s3://key:secret@ml-models/registry")
    with pytest.raises(BadInput, match="password inside") as refused:
        pull_mod.parse_source("https://user:secret@host/dist")
    assert "--token-env" in (refused.value.hint or "")
    web = pull_mod.parse_source("https://models.example/team/dist/")
    assert (web.kind, web.host, web.port, web.tls, web.base) == (
        "http",
        "models.example",
        443,
        True,
        "/team/dist",
    )
    assert web.key.startswith("http_models.example_443_")
    assert pull_mod.parse_source("http://127.0.0.1:8008").key == "http_127.0.0.1_8008"


# ---------------------------------------------------------------- from a folder
def test_pull_from_a_registry_root_into_the_documented_layout(served, root, cli, tmp_path):
    res = cli("pull", "faq-bot", "--from", str(root), "--json", root_dir=None)
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) >= {
        "name",
        "stage",
        "version",
        "path",
        "preferred_weight_path",
        "cached",
        "sha256",
    }
    key = "local_" + hashlib.sha256(str(os.path.realpath(root / "dist")).encode()).hexdigest()[:16]
    hub = Path(os.environ["TORCH_HOME"]) / "hub"
    vdir = hub / "regctl" / key / "release" / "faq-bot" / "v1"
    assert doc == {
        **doc,
        "name": "faq-bot",
        "stage": "release",
        "version": "v1",
        "path": str(vdir),
        "preferred_weight_path": str(vdir / "payload/model.pt"),
        "cached": False,
        "sha256": served.get("faq-bot:v1").bundle["sha256"],
    }
    assert (vdir / "payload/model.pt").read_bytes() == (
        served.get("faq-bot:v1").path / "payload/model.pt"
    ).read_bytes()
    assert not os.stat(vdir / "payload/model.pt").st_mode & 0o222
    sha = served.get("faq-bot:v1").files[0]["sha256"]
    assert cache_files(hub) == [f"regctl/blobs/sha256/{sha[:2]}/{sha}"] + [
        f"regctl/{key}/release/faq-bot/v1/{f}"
        for f in (".regctl-pull.json", "manifest.json", "payload/model.pt")
    ]
    blob = hub / f"regctl/blobs/sha256/{sha[:2]}/{sha}"
    assert os.path.samefile(blob, vdir / "payload/model.pt")  # the payload links its blob
    again = json.loads(
        cli("pull", "faq-bot", "--from", str(root / "dist"), "--json", root_dir=None).stdout
    )
    assert again["cached"] is True and again["path"] == str(vdir)
    human = cli("pull", "faq-bot", "--from", str(root), root_dir=None)
    assert human.exit_code == 0
    assert f"path: {vdir}" in human.stdout and "preferred weight:" in human.stdout
    assert human.stderr == ""  # no progress bar when stderr is not a terminal


def test_preferred_weight_order_and_explicit_version(served, root, tmp_path):
    client = ModelRegistryClient(root, cache_dir=tmp_path / "c")
    bundle = client.get("dev", "faq-bot", "v2")
    assert bundle.version == "v2" and bundle.cached is False
    assert bundle.preferred_weight_path == bundle.path / "payload/weights/sub/model-standard.pt"
    assert bundle.manifest["name"] == "faq-bot"
    assert {f["path"] for f in bundle.manifest["files"]} == {
        "payload/weights/a.pth",
        "payload/weights/model.pt2",
        "payload/weights/sub/model-standard.pt",
    }
    assert client.get("dev", "faq-bot", 2).cached is True
    assert client.get("dev", "faq-bot").version == "v2"
    assert client.cached_versions("dev", "faq-bot") == ["v2"]


def test_cache_dir_flag_and_env_override(served, root, tmp_path, cli):
    res = cli(
        "pull",
        "faq-bot",
        "--from",
        str(root),
        "--cache-dir",
        str(tmp_path / "flag"),
        "--json",
        root_dir=None,
    )
    assert json.loads(res.stdout)["path"].startswith(str(tmp_path / "flag" / "regctl"))
    os.environ["REGCTL_CACHE_DIR"] = str(tmp_path / "env")
    res = cli("pull", "faq-bot", "--from", str(root), "--json", root_dir=None)
    assert json.loads(res.stdout)["path"].startswith(str(tmp_path / "env" / "regctl"))


def test_missing_things_are_not_found(served, root, cli):
    assert cli("pull", "nope", "--from", str(root), root_dir=None).exit_code == 3
    assert (
        cli("pull", "faq-bot", "--from", str(root), "--version", "v9", root_dir=None).exit_code == 3
    )
    assert (
        cli("pull", "faq-bot", "--from", str(root), "--stage", "qa", root_dir=None).exit_code == 3
    )
    res = cli("pull", "faq-bot", "--from", str(root.parent / "nowhere"), root_dir=None)
    assert res.exit_code == 6


def tamper_served_bundle(root: Path, stage: str, name: str, version: str) -> None:
    """Replace the served (hard-linked) bundle with a damaged copy; models/ stays intact.
    A bundle assembled from the payload when read gets a damaged file of its own
    (what a served tree written by `dist rebuild --bundles` holds)."""
    path = root / "dist" / stage / name / "versions" / version / "bundle.tar.gz"
    if path.exists():
        data = bytearray(path.read_bytes())
        os.unlink(path)
    else:
        data = bytearray(bundle_bytes(root / "models" / name / version))
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_tampered_bundle_is_exit_5_and_leaves_the_cache_empty(served, root, cli, tmp_path):
    tamper_served_bundle(root, "release", "faq-bot", "v1")
    res = cli(
        "pull",
        "faq-bot",
        "--from",
        str(root),
        "--bundle",  # the bundle path even once the tree records manifest_sha256
        "--cache-dir",
        str(tmp_path / "c"),
        root_dir=None,
    )
    assert res.exit_code == 5, res.stderr
    assert "sha256" in res.stderr
    assert cache_files(tmp_path / "c") == []
    assert not (tmp_path / "c" / "regctl" / "local_").exists()


# ---------------------------------------------------------------- hostile bundles
def _bundle(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


def _manifest(files: dict[str, bytes]) -> bytes:
    return json.dumps(
        {
            "format_version": 1,
            "kind": "regctl/manifest",
            "name": "evil",
            "version": "v1",
            "created_at": "2026-01-01T00:00:00Z",
            "preferred_weight": "payload/model.pt",
            "files": [
                {"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                for p, d in files.items()
            ],
        }
    ).encode()


def serve_hostile(tree_root: Path, bundle: bytes) -> None:
    """A served tree whose index and LATEST.json vouch for ``bundle`` (so hashes pass)."""
    mdir = tree_root / "dist" / "release" / "evil"
    (mdir / "versions" / "v1").mkdir(parents=True)
    (mdir / "versions" / "v1" / "bundle.tar.gz").write_bytes(bundle)
    entry = {
        "version": "v1",
        "status": "active",
        "sha256": hashlib.sha256(bundle).hexdigest(),
        "size": len(bundle),
        "published_at": "2026-01-01T00:00:00Z",
    }
    (mdir / "LATEST").write_text("v1\n")
    (mdir / "LATEST.json").write_text(
        json.dumps({"format_version": 1, "kind": "regctl/dist-latest", **entry})
    )
    (mdir / "index.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "kind": "regctl/dist-index",
                "name": "evil",
                "stage": "release",
                "latest": "v1",
                "versions": [entry],
            }
        )
    )


OK_PAYLOAD = {"payload/model.pt": b"weights"}
HOSTILE = {
    "dotdot": [_file("payload/../../../../x-escaped", b"pwn")],
    "absolute": [_file("/tmp/regctl-abs-escape", b"pwn")],
    "symlink_out": [_special("payload/link", tarfile.SYMTYPE, "/etc/passwd")],
    "symlink_then_write": [
        _special("payload/d", tarfile.SYMTYPE, "../../../.."),
        _file("payload/d/x-escaped", b"pwn"),
    ],
    "hardlink": [_special("payload/h", tarfile.LNKTYPE, "/etc/passwd")],
    "device": [_special("payload/dev", tarfile.CHRTYPE)],
    "fifo": [_special("payload/fifo", tarfile.FIFOTYPE)],
    "outside_payload": [_file("evil.sh", b"echo")],
    "duplicate": [_file("payload/model.pt", b"weights"), _file("payload/model.pt", b"other")],
    "not_in_manifest": [_file("payload/extra.bin", b"extra")],
    "wrong_content": [_file("payload/model.pt", b"WEIGHTS")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundles_are_refused(case, tmp_path, cli):
    members = list(HOSTILE[case])
    if case != "duplicate" and case != "wrong_content":
        members.insert(0, _file("payload/model.pt", b"weights"))
    members.append(_file("manifest.json", _manifest(OK_PAYLOAD)))
    served_root = tmp_path / "evil-server"
    serve_hostile(served_root, _bundle(members))
    cache = tmp_path / "deep" / "a" / "b" / "c" / "cache"
    res = cli(
        "pull",
        "evil",
        "--from",
        str(served_root / "dist"),
        "--cache-dir",
        str(cache),
        root_dir=None,
    )
    assert res.exit_code == 5, (case, res.stdout, res.stderr)
    assert cache_files(cache) == []
    for p in tmp_path.rglob("x-escaped"):
        pytest.fail(f"{case}: wrote {p} outside the cache")
    assert not Path("/tmp/regctl-abs-escape").exists()


def test_install_race_keeps_the_first_complete_copy(tmp_path):
    tmp_path = tmp_path / "m"
    target = tmp_path / "v1"
    first = tmp_path / ".v1.a.unpack"
    second = tmp_path / ".v1.b.unpack"
    for d, tag in ((first, b"first"), (second, b"second")):
        (d / "payload").mkdir(parents=True)
        (d / "payload" / "f").write_bytes(tag)
    assert pull_cache.install(first, target, lambda: target.is_dir()) is True
    assert pull_cache.install(second, target, lambda: target.is_dir()) is False
    assert (target / "payload" / "f").read_bytes() == b"first"
    # a damaged copy is replaced
    assert pull_cache.install(second, target, lambda: False) is True
    assert (target / "payload" / "f").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]


# ---------------------------------------------------------------- over FTP
@pytest.fixture
def server(served, root):
    with FtpServer(root, *USER_ARGS, env=PW_ENV) as srv:
        yield srv


@pytest.mark.slow
def test_pull_over_ftp_then_cached_with_the_server_down(server, tmp_path):
    cache = tmp_path / "cache"
    args = (
        "faq-bot",
        "--from",
        server.user_url(),
        "--password-env",
        "FTP_PW",
        "--cache-dir",
        str(cache),
        "--json",
    )
    first = run_pull(*args, env=PW_ENV)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["version"] == "v1" and doc["cached"] is False
    assert doc["path"] == str(
        cache / "regctl" / f"127.0.0.1_{server.port}" / "release" / "faq-bot" / "v1"
    )
    assert Path(doc["preferred_weight_path"]).is_file()
    assert first.stderr == ""
    assert json.loads(run_pull(*args, env=PW_ENV).stdout)["cached"] is True
    server.stop()
    pinned = run_pull(
        "faq-bot",
        "--from",
        server.user_url(),
        "--version",
        "v1",
        "--cache-dir",
        str(cache),
        "--json",
    )  # no password, no server
    assert pinned.returncode == 0, pinned.stderr
    assert json.loads(pinned.stdout)["cached"] is True
    latest = run_pull(*args, env=PW_ENV)
    assert latest.returncode == 6 and "--offline" in latest.stderr
    offline = run_pull(*args, "--offline", env=PW_ENV)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["version"] == "v1"
    nothing = run_pull(
        "faq-bot",
        "--stage",
        "dev",
        "--from",
        server.user_url(),
        "--offline",
        "--cache-dir",
        str(cache),
    )
    assert nothing.returncode == 3


@pytest.mark.slow
def test_wrong_password_and_url_password(server, tmp_path):
    res = run_pull(
        "faq-bot",
        "--from",
        server.user_url(),
        "--password-env",
        "FTP_PW",
        "--cache-dir",
        str(tmp_path / "c"),
        env={"FTP_PW": "Bad-Pw-9731"},
    )
    assert res.returncode == 6 and "refused the login" in res.stderr
    assert "Bad-Pw-9731" not in res.stderr + res.stdout
    res = run_pull("faq-bot", "--from", f"ftp://mlops:{PASSWORD}@127.0.0.1:{server.port}")
    assert res.returncode == 2 and "--password-env" in res.stderr
    res = run_pull("faq-bot", "--from", server.user_url(), "--cache-dir", str(tmp_path / "c"))
    assert res.returncode == 2 and "password" in res.stderr  # no terminal to prompt on
    assert cache_files(tmp_path / "c") == []


@pytest.mark.slow
def test_tampered_bundle_over_ftp(server, root, tmp_path):
    tamper_served_bundle(root, "release", "faq-bot", "v1")
    res = run_pull(
        "faq-bot",
        "--from",
        server.user_url(),
        "--password-env",
        "FTP_PW",
        "--bundle",
        "--cache-dir",
        str(tmp_path / "c"),
        env=PW_ENV,
    )
    assert res.returncode == 5, res.stderr
    assert cache_files(tmp_path / "c") == []


@pytest.mark.slow
def test_hostile_bundle_over_ftp(tmp_path):
    members = [
        _file("payload/model.pt", b"weights"),
        _special("payload/link", tarfile.SYMTYPE, "../../../../../etc"),
        _file("manifest.json", _manifest(OK_PAYLOAD)),
    ]
    evil_root = tmp_path / "evil-root"
    serve_hostile(evil_root, _bundle(members))
    with FtpServer(evil_root, "--anonymous") as srv:
        res = run_pull("evil", "--from", srv.url, "--cache-dir", str(tmp_path / "c"))
    assert res.returncode == 5 and "link" in res.stderr
    assert cache_files(tmp_path / "c") == []


@pytest.mark.slow
def test_unreachable_server_is_exit_6(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_pull(
        "faq-bot",
        "--from",
        f"ftp://127.0.0.1:{port}",
        "--cache-dir",
        str(tmp_path / "c"),
        "--timeout",
        "5",
    )
    assert res.returncode == 6 and "cannot reach" in res.stderr


@pytest.mark.slow
def test_eight_concurrent_pulls_of_one_version(server, tmp_path):
    cache = tmp_path / "cache"

    def one(_i: int) -> subprocess.CompletedProcess[str]:
        return run_pull(
            "faq-bot",
            "--from",
            server.user_url(),
            "--password-env",
            "FTP_PW",
            "--cache-dir",
            str(cache),
            "--json",
            env=PW_ENV,
        )

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    paths = {json.loads(r.stdout)["path"] for r in results}
    assert len(paths) == 1
    vdir = Path(paths.pop())
    assert sorted(os.listdir(vdir.parent)) == ["v1"]  # no temp file or folder left
    assert len(cache_files(cache)) == 4  # marker, manifest, the payload file and its blob


@pytest.mark.slow
def test_concurrent_pulls_without_locks_all_succeed(server, tmp_path, monkeypatch):
    """Correctness does not depend on the lock: disable it and race 6 threads."""
    import contextlib

    monkeypatch.setattr(
        pull_mod.Puller, "_best_effort_lock", lambda self, *a: contextlib.nullcontext()
    )
    cfg = FtpModelClientConfig(
        port=server.port, username="mlops", password=PASSWORD, cache_dir=str(tmp_path / "c")
    )
    clients = [
        pull_mod.Puller(
            pull_mod.Source(kind="ftp", host="127.0.0.1", port=server.port, user="mlops"),
            password=PASSWORD,
            cache_root=tmp_path / "c",
        )
        for _ in range(6)
    ]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda c: c.pull("faq-bot", stage="release"), clients))
    assert {r.path for r in results} == {results[0].path}
    assert sum(not r.cached for r in results) >= 1
    assert sorted(os.listdir(results[0].path.parent)) == ["v1"]
    assert cfg.port == server.port


@pytest.mark.slow
def test_python_client_api(server, tmp_path):
    cfg = FtpModelClientConfig(
        host="127.0.0.1",
        port=server.port,
        username="mlops",
        password=PASSWORD,
        cache_dir=str(tmp_path / "hub"),
    )
    client = get_ftp_model_registry_client(cfg)
    assert (
        get_ftp_model_registry_client(
            FtpModelClientConfig(
                host="127.0.0.1",
                port=server.port,
                username="mlops",
                password=PASSWORD,
                cache_dir=str(tmp_path / "hub"),
            )
        )
        is client
    )
    assert PASSWORD not in repr(cfg)
    bundle = client.get("release", "faq-bot", "latest")
    assert bundle.version == "v1" and bundle.path.is_dir() and not bundle.cached
    assert bundle.preferred_weight_path == bundle.path / "payload" / "model.pt"
    assert bundle.manifest["version"] == "v1"
    dev = client.get("dev", "faq-bot", "latest")
    assert dev.preferred_weight_path.name == "model-standard.pt"
    server.stop()
    assert client.get("release", "faq-bot", "v1").cached is True
    from registry_cli import RemoteError

    with pytest.raises(RemoteError):
        client.get("release", "faq-bot", "latest")
    assert client.get("release", "faq-bot", "latest", offline=True).version == "v1"


@pytest.mark.slow
def test_pull_over_ftps(served, root, tmp_path):
    cert, key = make_tls_cert(tmp_path / "tls")
    with FtpServer(
        root, *USER_ARGS, "--tls-cert", str(cert), "--tls-key", str(key), env=PW_ENV
    ) as srv:
        url = f"ftps://mlops@127.0.0.1:{srv.port}"
        res = run_pull(
            "faq-bot",
            "--from",
            url,
            "--password-env",
            "FTP_PW",
            "--ca-cert",
            str(cert),
            "--cache-dir",
            str(tmp_path / "c"),
            "--json",
            env=PW_ENV,
        )
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["version"] == "v1"
        res = run_pull(
            "faq-bot",
            "--from",
            url,
            "--password-env",
            "FTP_PW",
            "--cache-dir",
            str(tmp_path / "d"),
            env=PW_ENV,
        )
        assert res.returncode == 6  # self-signed and not trusted: refused
        plain = run_pull(
            "faq-bot",
            "--from",
            srv.user_url(),
            "--password-env",
            "FTP_PW",
            "--cache-dir",
            str(tmp_path / "e"),
            env=PW_ENV,
        )
        assert plain.returncode == 6  # the server requires TLS


@pytest.mark.slow
def test_pull_settings_from_registry_yaml(server, tmp_path, monkeypatch):
    cfg = tmp_path / "client.yaml"
    cfg.write_text(
        f"pull:\n  from: {server.user_url()}\n  password_env: FTP_PW\n"
        f"  cache_dir: {tmp_path / 'cfg-cache'}\n  stage: dev\n"
    )
    res = subprocess.run(
        regctl_cmd("--config", str(cfg), "pull", "faq-bot", "--json"),
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **PW_ENV),
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["stage"] == "dev" and doc["version"] == "v2"
    assert doc["path"].startswith(str(tmp_path / "cfg-cache"))
    cfg.write_text("pull:\n  password: x\n")
    res = subprocess.run(
        regctl_cmd("--config", str(cfg), "pull", "faq-bot"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2


def test_python_client_honours_the_pull_section(served, root, tmp_path):
    """Like `regctl pull`: pull.from and pull.cache_dir (relative to the config file's
    folder), pull.stage; explicit arguments win."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    rel_root = os.path.relpath(root, conf_dir)
    cfg = conf_dir / "client.yaml"
    cfg.write_text(f"pull:\n  from: {rel_root}\n  cache_dir: cache\n  stage: dev\n")
    client = ModelRegistryClient(config=cfg)
    assert client.default_stage == "dev"
    assert client.cache_root == conf_dir / "cache"
    bundle = client.get("release", "faq-bot")
    assert bundle.version == "v1" and bundle.path.is_relative_to(conf_dir / "cache")
    other = ModelRegistryClient(config=cfg, cache_dir=tmp_path / "mine")
    assert other.cache_root == tmp_path / "mine"
    (Path.cwd() / "registry.yaml").write_text(f"pull:\n  from: {root}\n  cache_dir: here\n")
    found = ModelRegistryClient()  # ./registry.yaml, found the way the command finds it
    assert found.cache_root == Path.cwd() / "here"
    assert found.get("release", "faq-bot").version == "v1"
    (Path.cwd() / "registry.yaml").write_text("pull:\n  password: x\n")
    from registry_cli import BadInput

    with pytest.raises(BadInput, match="password"):
        ModelRegistryClient(root)
