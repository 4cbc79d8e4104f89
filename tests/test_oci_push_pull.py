"""``pull --from oci://`` and ``import oci://`` against a real docker-registry: what
regctl pushed and what skopeo copied from an OCI layout; by stage tag, tag, digest
and --version; resuming with Range; a tampered blob (exit 5, nothing installed or
imported), a foreign manifest (exit 2), an unknown registry (exit 6)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.oci import layout as oci_layout
from registry_cli.oci.client import RegistryClient
from registry_cli.oci.reference import parse_ref
from registry_cli.pull.oci import OciTransport, parse_oci_source
from tests.oci_registry import OciRegistry, have_registry, skopeo
from tests.s3_helpers import free_port

pytestmark = pytest.mark.skipif(not have_registry(), reason="docker-registry/skopeo missing")


@pytest.fixture
def registry(tmp_path):
    with OciRegistry(tmp_path / "oci") as r:
        yield r


@pytest.fixture
def src(tmp_path, model_file) -> ModelRegistry:
    """team/m v1 (released, champion) and v2 (candidate), with a card."""
    reg = ModelRegistry(tmp_path / "registry")
    card = model_file.parent / "README.md"
    card.write_text("# m\n")
    reg.publish("team/m", [model_file, card], metrics={"acc": 0.8}, tags={"ds": "d1"})
    reg.promote("team/m", version="v1")
    model_file.write_bytes(os.urandom(300_000))
    reg.publish("team/m", [model_file, card], metrics={"acc": 0.9})
    return reg


def _push(cli, host: str, ref: str, *tags: str) -> dict:
    args = [x for t in tags for x in ("--tag", t)]
    got = cli("push", ref, f"oci://{host}/team/m", *args, "--plain-http", "--json")
    assert got.exit_code == 0, got.stderr
    return json.loads(got.stdout)


def _same_files(reg: ModelRegistry, ref: str, folder: Path) -> None:
    info = reg.get(ref)
    for f in info.files:
        assert (folder / f["path"]).read_bytes() == (info.path / f["path"]).read_bytes()
    listed = sorted(
        p.relative_to(folder).as_posix() for p in (folder / "payload").rglob("*") if p.is_file()
    )
    assert listed == sorted(f["path"] for f in info.files)


def test_pull_by_stage_tag_digest_and_version(src, cli, registry, tmp_path):
    _push(cli, registry.host, "team/m:v1", "release")
    pushed = _push(cli, registry.host, "team/m:v2")
    base = f"oci://{registry.host}/team/m"

    def pull(*args: str) -> dict:
        got = cli(
            "pull",
            "team/m",
            *args,
            "--plain-http",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            root_dir=None,
        )
        assert got.exit_code == 0, got.stderr
        return json.loads(got.stdout)

    first = pull("--from", base)  # the tag named like the stage: release -> v1
    assert first["version"] == "v1" and not first["cached"]
    _same_files(src, "team/m:v1", Path(first["path"]))
    assert pull("--from", base)["cached"]
    by_tag = pull("--from", f"{base}:v2")
    assert by_tag["version"] == "v2"
    _same_files(src, "team/m:v2", Path(by_tag["path"]))
    assert pull("--from", f"{base}@{pushed['digest']}")["version"] == "v2"
    assert pull("--from", base, "--version", "v2")["cached"]

    got = cli(
        "pull",
        "other",
        "--from",
        f"{base}:v1",
        "--plain-http",
        "--cache-dir",
        str(tmp_path / "c2"),
        root_dir=None,
    )
    assert got.exit_code == 2 and "holds team/m, not other" in got.stderr
    port = free_port()
    got = cli(
        "pull",
        "team/m",
        "--from",
        f"oci://127.0.0.1:{port}/team/m",
        "--plain-http",
        "--cache-dir",
        str(tmp_path / "c3"),
        root_dir=None,
    )
    assert got.exit_code == 6 and got.stderr.startswith("error: cannot reach")
    got = cli("pull", "team/m", "--from", "ftp://h:21", "--plain-http", root_dir=None)
    assert got.exit_code == 2


def test_a_blob_download_resumes_with_range(src, cli, registry, tmp_path):
    _push(cli, registry.host, "team/m:v2")
    source = parse_oci_source(f"oci://{registry.host}/team/m:v2")
    import dataclasses

    transport = OciTransport(dataclasses.replace(source, tls=False))
    try:
        transport.read_small("release/team/m/LATEST.json", 1 << 20)
        info = src.get("team/m:v2")
        weight = next(f for f in info.files if f["path"].endswith("model.pt"))
        data = (info.path / weight["path"]).read_bytes()
        half = len(data) // 2
        part = tmp_path / "part"
        part.write_bytes(data[:half])
        fd = os.open(part, os.O_RDWR)
        try:
            got = transport.download(
                f"release/team/m/versions/v2/{weight['path']}", fd, offset=half,
                prefix=hashlib.sha256(data[:half]), limit=len(data),
            )  # fmt: skip
        finally:
            os.close(fd)
        assert got.offset == half and got.sha256 == weight["sha256"] and got.size == len(data)
        assert part.read_bytes() == data
    finally:
        transport.close()


def test_skopeo_copies_a_layout_and_regctl_pulls_and_imports_it(src, cli, registry, tmp_path):
    out = tmp_path / "layout"
    oci_layout.export(src, ["team/m:v1", "team/m:v2"], out)
    for tag in ("v1", "v2", "champion"):
        got = skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{out}:{tag}",
            f"docker://{registry.host}/team/m:{tag}",
        )
        assert got.returncode == 0, got.stderr
    got = cli(
        "pull",
        "team/m",
        "--from",
        f"oci://{registry.host}/team/m:champion",
        "--plain-http",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        root_dir=None,
    )
    assert got.exit_code == 0, got.stderr
    _same_files(src, "team/m:v1", Path(json.loads(got.stdout)["path"]))

    dest = tmp_path / "dest"
    got = cli("import", f"oci://{registry.host}/team/m", "--plain-http", "--json", root_dir=dest)
    assert got.exit_code == 0, got.stderr
    assert [r["action"] for r in json.loads(got.stdout)] == ["imported", "imported"]
    back = ModelRegistry(dest)
    for v in ("v1", "v2"):
        a, b = src.get(f"team/m:{v}"), back.get(f"team/m:{v}")
        assert [f["sha256"] for f in a.files] == [f["sha256"] for f in b.files]
        assert a.metrics == b.metrics and a.tags == b.tags
    assert back.get("team/m@champion").version == 1
    again = cli("import", f"oci://{registry.host}/team/m", "--plain-http", "--json", root_dir=dest)
    assert [r["action"] for r in json.loads(again.stdout)] == ["skip", "skip"]
    assert len(back.model_state("team/m").versions) == 2


def _blob_file(registry: OciRegistry, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return (
        registry.folder / "storage/docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"
    )


def test_a_tampered_blob_is_exit_5_and_nothing_is_kept(src, cli, registry, tmp_path):
    _push(cli, registry.host, "team/m:v2")
    info = src.get("team/m:v2")
    weight = next(f for f in info.files if f["path"].endswith("model.pt"))
    blob = _blob_file(registry, "sha256:" + weight["sha256"])
    blob.write_bytes(b"\0" * weight["size"])  # same size, other bytes
    cache = tmp_path / "cache"
    got = cli(
        "pull",
        "team/m",
        "--from",
        f"oci://{registry.host}/team/m:v2",
        "--plain-http",
        "--cache-dir",
        str(cache),
        root_dir=None,
    )
    assert got.exit_code == 5, got.stderr
    assert "sha256" in got.stderr and "Traceback" not in got.stderr
    assert not list(cache.rglob("v2"))
    dest = tmp_path / "dest"
    got = cli("import", f"oci://{registry.host}/team/m", "--plain-http", root_dir=dest)
    assert got.exit_code == 5, got.stderr
    assert not (dest / "models" / "team" / "m" / "v2").exists()


def test_a_foreign_manifest_is_exit_2(cli, registry, tmp_path):
    client = RegistryClient(
        parse_ref(f"oci://{registry.host}/team/m"), plain_http=True, actions="pull,push"
    )
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = b"not really a tar"
    for data in (config, layer):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        client.upload_blob(digest, len(data), lambda s, n, d=data: d[s : s + n])
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": len(layer)}],
    }).encode()  # fmt: skip
    client.put_manifest("v1", manifest)
    client.close()
    got = cli(
        "pull",
        "team/m",
        "--from",
        f"oci://{registry.host}/team/m:v1",
        "--plain-http",
        "--cache-dir",
        str(tmp_path / "c"),
        root_dir=None,
    )
    assert got.exit_code == 2, got.stderr
    assert len(got.stderr.strip().splitlines()) <= 2 and "is not a model" in got.stderr
    got = cli("import", f"oci://{registry.host}/team/m", "--plain-http", root_dir=tmp_path / "dest")
    assert got.exit_code == 2, got.stderr
    assert not (tmp_path / "dest" / "models" / "team").exists()


def test_a_blob_redirect_is_followed_with_range(src, cli, registry):
    """Registries serve blobs from object storage: GET answers 307 elsewhere."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    _push(cli, registry.host, "team/m:v2")

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(307)
            self.send_header("Location", f"{registry.url}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

    front = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    try:
        info = src.get("team/m:v2")
        weight = next(f for f in info.files if f["path"].endswith("model.pt"))
        data = (info.path / weight["path"]).read_bytes()
        ref = parse_ref(f"oci://127.0.0.1:{front.server_address[1]}/team/m")
        client = RegistryClient(ref, plain_http=True)
        resp = client.open_blob(f"sha256:{weight['sha256']}", offset=10)
        assert resp.status == 206 and resp.read() == data[10:]
        client.close()
    finally:
        front.shutdown()
        front.server_close()
