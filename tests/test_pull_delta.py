"""Delta pulls (docs/pull.md, "Delta pulls"): the pull cache holds each verified file once
(blobs/sha256/xx/<sha>, payload files hard-linked), and a pull fetches only the files whose
sha256 it lacks, counted at real servers: serve-ftp's RETR log, serve-registry and moto's
S3 behind a byte-counting proxy, and a folder (hard links tell what was copied)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.server.launch import ServeRegistryProcess
from tests.conftest import regctl_cmd
from tests.counting_proxy import CountingProxy
from tests.ftp_helpers import PASSWORD, FtpServer
from tests.http_static import StaticServer
from tests.test_server import make_root, server_env

pytestmark = pytest.mark.slow
KiB, MiB = 1 << 10, 1 << 20


def pull(*args: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run(
        regctl_cmd("pull", *args, "--json"),
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, **(env or {})),
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def blobs_in(cache: Path) -> set[str]:
    return {p.name for p in (cache / "regctl/blobs/sha256").glob("*/*")}


@pytest.fixture
def two_versions(tmp_path):
    """m v1 (big.bin 1 MiB, small.bin 300 KiB, cfg.json) and v2 with small.bin changed;
    other (a second model) shares big.bin. All in the dev stage of a folder root."""
    root = tmp_path / "registry"
    token = make_root(root, ("read",))["read"]
    (tmp_path / "read-token").write_text(token)
    reg = ModelRegistry(root)
    src = tmp_path / "src"
    src.mkdir()
    big, small, cfg = src / "big.bin", src / "small.bin", src / "cfg.json"
    big.write_bytes(os.urandom(MiB))
    small.write_bytes(os.urandom(300 * KiB))
    cfg.write_text('{"lr": 0.1}\n')
    reg.publish("m", [big, small, cfg])
    os.unlink(small)
    small.write_bytes(os.urandom(300 * KiB))  # the one changed file
    reg.publish("m", [big, small, cfg])
    own = src / "own.bin"
    own.write_bytes(os.urandom(20 * KiB))
    reg.publish("other", [big, own])
    return root, reg


def check_delta(cache: Path, v1: dict, v2: dict, reg: ModelRegistry) -> None:
    """v2 is intact, and its unchanged files are v1's inodes (nothing copied twice)."""
    p1, p2 = Path(v1["path"]), Path(v2["path"])
    for f in reg.get("m:v2").files:
        assert (p2 / f["path"]).read_bytes() == (reg.get("m:v2").path / f["path"]).read_bytes()
    assert os.path.samefile(p1 / "payload/big.bin", p2 / "payload/big.bin")
    assert os.path.samefile(p1 / "payload/cfg.json", p2 / "payload/cfg.json")
    assert not os.path.samefile(p1 / "payload/small.bin", p2 / "payload/small.bin")
    shas = {f["sha256"] for v in ("m:v1", "m:v2") for f in reg.get(v).files}
    assert blobs_in(cache) == shas  # each distinct file once
    for f in reg.get("m:v2").files:
        blob = cache / f"regctl/blobs/sha256/{f['sha256'][:2]}/{f['sha256']}"
        assert os.path.samefile(blob, p2 / f["path"])
        assert not blob.stat().st_mode & 0o222


def test_ftp_v2_after_v1_retrieves_only_the_changed_file(two_versions, tmp_path):
    root, reg = two_versions
    env = {"FTP_PW": PASSWORD}
    cache = tmp_path / "cache"
    with FtpServer(root, "--user", "mlops", "--password-env", "FTP_PW", env=env) as srv:
        args = ("m", "--stage", "dev", "--from", srv.user_url(), "--password-env", "FTP_PW")
        v1 = pull(*args, "--version", "v1", "--cache-dir", str(cache), env=env)
        first = retrieved(srv.log)
        v2 = pull(*args, "--cache-dir", str(cache), env=env)
        second = retrieved(srv.log)[len(first) :]
        payload = [(p, n) for p, n in second if "/payload/" in p]
        assert payload == [("/dev/m/versions/v2/payload/small.bin", 300 * KiB)]
        assert sum(n for _p, n in second) <= 300 * KiB + 256 * KiB  # + the documents
        check_delta(cache, v1, v2, reg)
        other = pull("other", *args[1:], "--cache-dir", str(cache), env=env)
        third = [p for p, _n in retrieved(srv.log)[len(first) + len(second) :]]
        assert [p for p in third if "/payload/" in p] == ["/dev/other/versions/v1/payload/own.bin"]
    assert v2["version"] == "v2" and v2["cached"] is False
    assert os.path.samefile(
        Path(other["path"]) / "payload/big.bin", Path(v1["path"]) / "payload/big.bin"
    )


def retrieved(log: str) -> list[tuple[str, int]]:
    """(path, bytes) of every completed RETR in serve-ftp's log."""
    out = []
    for line in log.splitlines():
        if "RETR " in line and "completed=1" in line:
            path = line.split("RETR ", 1)[1].split()[0].split("/dist", 1)[-1]
            out.append((path, int(line.rsplit("bytes=", 1)[1].split()[0])))
    return out


def test_serve_registry_v2_after_v1_sends_only_the_changed_file(two_versions, tmp_path):
    root, reg = two_versions
    cache = tmp_path / "cache"
    with ServeRegistryProcess(root, log=tmp_path / "s.log", env=server_env(tmp_path)) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        with CountingProxy(port) as proxy:
            token = _read_token(root)
            env = {"REGCTL_TOKEN": token}
            base = ("m", "--stage", "dev", "--from", proxy.url, "--cache-dir", str(cache))
            v1 = pull(*base, "--version", "v1", env=env)
            proxy.reset()
            v2 = pull(*base, env=env)
            paths = [p for _m, p in proxy.requests()]
            assert [p for p in paths if "/payload/" in p] == [
                "/dist/dev/m/versions/v2/payload/small.bin"
            ]
            assert proxy.bytes_down <= 300 * KiB + 256 * KiB
            assert not any(p.endswith("bundle.tar.gz") for p in paths)
    check_delta(cache, v1, v2, reg)


def _read_token(root: Path) -> str:
    return (root.parent / "read-token").read_text().strip()


def test_s3_v2_after_v1_gets_only_the_changed_object(s3_root, s3_server, tmp_path):
    reg = ModelRegistry(s3_root)
    reg.init()
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(MiB))
    (src / "small.bin").write_bytes(os.urandom(300 * KiB))
    reg.publish("m", [src / "big.bin", src / "small.bin"])
    os.unlink(src / "small.bin")
    (src / "small.bin").write_bytes(os.urandom(300 * KiB))
    reg.publish("m", [src / "big.bin", src / "small.bin"])
    cache = tmp_path / "cache"
    with CountingProxy(s3_server.port) as proxy:
        env = {"REGCTL_S3_ENDPOINT_URL": proxy.url, "AWS_ENDPOINT_URL": proxy.url}
        base = ("m", "--stage", "dev", "--from", str(s3_root), "--cache-dir", str(cache))
        v1 = pull(*base, "--version", "v1", env=env)
        proxy.reset()
        v2 = pull(*base, env=env)
        gets = [p for m, p in proxy.requests() if m == "GET"]
        fetched = [p for p in gets if "/payload/" in p or "/blobs/" in p]
        assert len(fetched) == 1, gets
        small = reg.get("m:v2").files
        changed = next(f for f in small if f["path"].endswith("small.bin"))
        assert fetched[0].endswith(("/payload/small.bin", changed["sha256"]))
        assert proxy.bytes_down <= 300 * KiB + 256 * KiB
    p1, p2 = Path(v1["path"]), Path(v2["path"])
    assert os.path.samefile(p1 / "payload/big.bin", p2 / "payload/big.bin")
    assert (p2 / "payload/small.bin").read_bytes() == (src / "small.bin").read_bytes()


def test_folder_source_links_the_cached_files(two_versions, tmp_path):
    root, reg = two_versions
    cache = tmp_path / "cache"
    base = ("m", "--stage", "dev", "--from", str(root), "--cache-dir", str(cache))
    v1 = pull(*base, "--version", "v1")
    v2 = pull(*base)
    check_delta(cache, v1, v2, reg)
    # and the served tree's files are never linked into the cache (it copies what it gets)
    served = root / "dist/dev/m/versions/v2/payload/small.bin"
    assert not os.path.samefile(served, Path(v2["path"]) / "payload/small.bin")


def test_a_damaged_blob_is_detected_and_fetched_again(two_versions, tmp_path):
    root, reg = two_versions
    env = {"FTP_PW": PASSWORD}
    cache = tmp_path / "cache"
    with FtpServer(root, "--user", "mlops", "--password-env", "FTP_PW", env=env) as srv:
        args = ("--stage", "dev", "--from", srv.user_url(), "--password-env", "FTP_PW")
        pull("m", *args, "--version", "v1", "--cache-dir", str(cache), env=env)
        sha = next(f["sha256"] for f in reg.get("m:v1").files if f["path"].endswith("big.bin"))
        blob = cache / f"regctl/blobs/sha256/{sha[:2]}/{sha}"
        os.chmod(blob, 0o644)
        with open(blob, "r+b") as fh:  # same size, one byte flipped: only a hash tells
            first = fh.read(1)
            fh.seek(0)
            fh.write(bytes([first[0] ^ 0xFF]))
        before = len(retrieved(srv.log))
        other = pull("other", *args, "--cache-dir", str(cache), env=env)
        again = [p for p, _n in retrieved(srv.log)[before:] if "/payload/" in p]
    assert sorted(again) == [
        "/dev/other/versions/v1/payload/big.bin",
        "/dev/other/versions/v1/payload/own.bin",
    ]
    good = (reg.get("other:v1").path / "payload/big.bin").read_bytes()
    assert (Path(other["path"]) / "payload/big.bin").read_bytes() == good
    assert blob.read_bytes() == good  # the blob was replaced by the verified download
    assert os.path.samefile(blob, Path(other["path"]) / "payload/big.bin")


def blobify(root: Path, out: Path) -> Path:
    """A served tree with no payload copies: ``out/dist`` (documents and manifests) and
    ``out/blobs/sha256``, LATEST.json and index.json saying ``"blobs"`` (as on S3)."""
    dist = out / "dist"
    shutil.copytree(root / "dist", dist, ignore=shutil.ignore_patterns("payload", "bundle.tar.gz"))
    for manifest in dist.rglob("manifest.json"):
        name_dir = manifest.parent.parent.parent
        for f in json.loads(manifest.read_text())["files"]:
            blob = out / f"blobs/sha256/{f['sha256'][:2]}/{f['sha256']}"
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                served = root / "dist" / manifest.parent.relative_to(dist) / f["path"]
                shutil.copyfile(served, blob)
        assert name_dir.name
    for doc_path in [*dist.rglob("LATEST.json"), *dist.rglob("index.json")]:
        up = "/".join([".."] * (len(doc_path.parent.relative_to(dist).parts) + 1))
        doc = json.loads(doc_path.read_text())
        for entry in [doc] if doc_path.name == "LATEST.json" else doc["versions"]:
            entry["blobs"] = f"{up}/blobs/sha256"
        doc_path.write_text(json.dumps(doc))
    return out


def test_the_blobs_key_of_a_served_tree_is_followed_from_a_folder_and_http(two_versions, tmp_path):
    root, reg = two_versions
    tree = blobify(root, tmp_path / "served")
    cache = tmp_path / "cache"
    base = ("m", "--stage", "dev", "--from", str(tree / "dist"), "--cache-dir", str(cache))
    v1 = pull(*base, "--version", "v1")
    v2 = pull(*base)
    check_delta(cache, v1, v2, reg)
    with StaticServer(tree) as web:
        got = pull(
            "other",
            "--stage",
            "dev",
            "--from",
            f"{web.url}/dist",
            "--cache-dir",
            str(cache),
        )
        asked = [p for p in web.paths if "/blobs/" in p]
    own = next(f["sha256"] for f in reg.get("other:v1").files if f["path"].endswith("own.bin"))
    # another source, same cache: big.bin came from the folder source already
    assert asked == [f"/blobs/sha256/{own[:2]}/{own}"]
    assert (Path(got["path"]) / "payload/own.bin").read_bytes() == (
        reg.get("other:v1").path / "payload/own.bin"
    ).read_bytes()


def test_a_hostile_blobs_key_is_exit_5(two_versions, tmp_path):
    root, _reg = two_versions
    tree = blobify(root, tmp_path / "served")
    latest = tree / "dist/dev/m/LATEST.json"
    doc = json.loads(latest.read_text())
    doc["blobs"] = "../../../../../etc"
    latest.write_text(json.dumps(doc))
    args = ("m", "--stage", "dev", "--from", str(tree / "dist"), "--cache-dir", str(tmp_path / "c"))
    proc = subprocess.run(
        regctl_cmd("pull", *args),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 5, proc.stderr
    assert "blobs" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "c/regctl/blobs").exists()


def test_a_bundle_pull_fills_the_blobs_a_later_per_file_pull_uses(two_versions, tmp_path):
    root, reg = two_versions
    env = {"FTP_PW": PASSWORD}
    cache = tmp_path / "cache"
    with FtpServer(root, "--user", "mlops", "--password-env", "FTP_PW", env=env) as srv:
        args = ("m", "--stage", "dev", "--from", srv.user_url(), "--password-env", "FTP_PW")
        v1 = pull(*args, "--version", "v1", "--bundle", "--cache-dir", str(cache), env=env)
        first = retrieved(srv.log)
        assert [p for p, _n in first if p.endswith("bundle.tar.gz")] == [
            "/dev/m/versions/v1/bundle.tar.gz"
        ]
        v2 = pull(*args, "--cache-dir", str(cache), env=env)
        second = [p for p, _n in retrieved(srv.log)[len(first) :] if "/payload/" in p]
    assert second == ["/dev/m/versions/v2/payload/small.bin"]
    check_delta(cache, v1, v2, reg)


def test_blob_paths_of_the_served_tree():
    from registry_cli.errors import IntegrityError
    from registry_cli.pull.remote import RemoteVersion, blob_path

    sha = "ab" + "0" * 62
    assert blob_path("release/ppe", "../../../blobs/sha256", sha) == f"../blobs/sha256/ab/{sha}"
    assert blob_path("dev/team/m", "../../../../blobs/sha256", sha) == f"../blobs/sha256/ab/{sha}"
    assert blob_path("dev/m", "blobs", sha) == f"dev/m/blobs/ab/{sha}"
    for hostile in ("../../../../blobs", "/etc", "../../../blobs/../../x"):
        with pytest.raises(IntegrityError):
            blob_path("release/ppe", hostile, sha)
    entry = {"path": "payload/a.bin", "sha256": sha, "size": 1}
    plain = RemoteVersion(3, sha, 1, sha)
    assert plain.file_path("dev", "m", entry) == "dev/m/versions/v3/payload/a.bin"
    blobbed = RemoteVersion(3, sha, 1, sha, "../../../blobs/sha256")
    assert blobbed.file_path("dev", "m", entry) == f"../blobs/sha256/ab/{sha}"


def test_a_registry_server_tree_with_blobs_is_pulled_through_its_files_route(
    two_versions, tmp_path
):
    """serve-registry over a tree whose documents say "blobs" (as over an object store)
    serves no blob folder: the payload comes from its files route, still only what the
    cache lacks."""
    root, reg = two_versions
    dist = root / "dist"
    for payload in dist.rglob("payload"):
        shutil.rmtree(payload)  # /dist/ has no payload copies now
    for doc_path in [*dist.rglob("LATEST.json"), *dist.rglob("index.json")]:
        up = "/".join([".."] * (len(doc_path.parent.relative_to(dist).parts) + 1))
        doc = json.loads(doc_path.read_text())
        for entry in [doc] if doc_path.name == "LATEST.json" else doc["versions"]:
            entry["blobs"] = f"{up}/blobs/sha256"
        os.unlink(doc_path)  # never write through a hard link
        doc_path.write_text(json.dumps(doc))
    cache = tmp_path / "cache"
    with ServeRegistryProcess(root, log=tmp_path / "s.log", env=server_env(tmp_path)) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        with CountingProxy(port) as proxy:
            env = {"REGCTL_TOKEN": _read_token(root)}
            base = ("m", "--stage", "dev", "--from", proxy.url, "--cache-dir", str(cache))
            v1 = pull(*base, "--version", "v1", env=env)
            proxy.reset()
            v2 = pull(*base, env=env)
            paths = [p for _m, p in proxy.requests()]
    assert [p for p in paths if "/files/" in p or "/blobs/" in p] == [
        "/api/v1/models/m/-/versions/v2/files/payload/small.bin"
    ]
    assert not any(p.endswith("bundle.tar.gz") for p in paths)
    check_delta(cache, v1, v2, reg)
