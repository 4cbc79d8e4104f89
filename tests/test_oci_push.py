"""``regctl push oci://`` against a real docker-registry (plain http, htpasswd Basic,
and the Bearer token flow of our own token service), read back with skopeo;
mirrors on promote and alias moves; a failing mirror queues and ``oci sync``
delivers; bad input (refused connection, wrong password, a tampered payload)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.oci import auth
from registry_cli.oci.client import CHUNK
from registry_cli.oci.reference import parse_ref
from tests.oci_registry import OciRegistry, have_registry, skopeo
from tests.s3_helpers import free_port

pytestmark = pytest.mark.skipif(not have_registry(), reason="docker-registry/skopeo missing")


@pytest.fixture
def registry(tmp_path):
    with OciRegistry(tmp_path / "oci") as r:
        yield r


@pytest.fixture
def src(tmp_path, model_file) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    card = model_file.parent / "README.md"
    card.write_text("# m\n")
    reg.publish("team/m", [model_file, card], metrics={"acc": 0.8})
    return reg


def _payload(reg: ModelRegistry, ref: str) -> dict[str, str]:
    info = reg.get(ref)
    return {f["sha256"]: f["path"] for f in info.files}


def test_push_skopeo_reads_it_and_a_second_push_sends_no_blob_bytes(src, cli, registry, tmp_path):
    url = f"oci://{registry.host}/models/team/m"
    got = cli("push", "team/m:v1", url, "--tag", "prod", "--plain-http", "--json")
    assert got.exit_code == 0, got.stderr
    first = json.loads(got.stdout)
    assert first["tags"] == ["v1", "prod"] and first["skipped_bytes"] == 0
    info = src.get("team/m:v1")
    assert first["pushed_bytes"] >= sum(f["size"] for f in info.files)
    raw = skopeo(
        "inspect", "--tls-verify=false", "--raw", f"docker://{registry.host}/models/team/m:prod"
    )
    assert raw.returncode == 0, raw.stderr
    assert "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest() == first["digest"]
    manifest = json.loads(raw.stdout)
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    out = tmp_path / "copy"
    copied = skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/models/team/m:v1",
        f"oci:{out}:v1",
    )
    assert copied.returncode == 0, copied.stderr
    for sha, path in _payload(src, "team/m:v1").items():
        assert (out / "blobs" / "sha256" / sha).read_bytes() == (info.path / path).read_bytes()

    again = cli("push", "team/m:v1", url, "--plain-http", "--json")
    second = json.loads(again.stdout)
    assert second["pushed_bytes"] == 0 and second["skipped_bytes"] == first["pushed_bytes"]
    assert second["digest"] == first["digest"]


def test_a_large_file_goes_up_in_chunks(tmp_path, cli, registry, monkeypatch):
    from registry_cli.oci import client

    monkeypatch.setattr(client, "MONOLITHIC_MAX", 1 << 20)
    monkeypatch.setattr(client, "CHUNK", 1 << 20)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom((3 << 20) + 12345))
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish("big", [big])
    got = cli("push", "big", f"oci://{registry.host}/big", "--plain-http", "--json")
    assert got.exit_code == 0, got.stderr
    out = tmp_path / "copy"
    assert (
        skopeo(
            "copy", "--src-tls-verify=false", f"docker://{registry.host}/big:v1", f"oci:{out}:v1"
        ).returncode
        == 0
    )
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    assert (out / "blobs" / "sha256" / sha).read_bytes() == big.read_bytes()
    assert CHUNK > 1 << 20  # the module default stayed what the docs say


def test_basic_auth_from_flags_and_docker_config(src, cli, tmp_path, monkeypatch, capfd):
    with OciRegistry(tmp_path / "auth", user="ci", password="s3cret-pw") as r:
        url = f"oci://{r.host}/m"
        got = cli("push", "team/m", url, "--plain-http")
        assert got.exit_code == 6 and "needs a login" in got.stderr
        monkeypatch.setenv("PW", "wrong")
        got = cli("push", "team/m", url, "--plain-http", "--username", "ci", "--password-env", "PW")
        assert got.exit_code == 6
        assert got.stderr.startswith("error: ") and "401" in got.stderr
        assert "Traceback" not in got.stderr
        monkeypatch.setenv("PW", "s3cret-pw")
        got = cli("push", "team/m", url, "--plain-http", "--username", "ci", "--password-env", "PW")
        assert got.exit_code == 0, got.stderr
        assert "s3cret-pw" not in got.stdout + got.stderr
        docker = tmp_path / "docker"
        docker.mkdir()
        entry = base64.b64encode(b"ci:s3cret-pw").decode()
        (docker / "config.json").write_text(json.dumps({"auths": {r.host: {"auth": entry}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(docker))
        got = cli("push", "team/m", url, "--plain-http", "--tag", "latest", "--json")
        assert got.exit_code == 0, got.stderr
        assert json.loads(got.stdout)["pushed_bytes"] == 0
        seen = skopeo(
            "inspect",
            "--tls-verify=false",
            "--creds",
            "ci:s3cret-pw",
            "--raw",
            f"docker://{r.host}/m:latest",
        )
        assert seen.returncode == 0, seen.stderr


def test_bearer_token_flow(src, cli, tmp_path, monkeypatch):
    from tests.oci_token import TokenRegistry, TokenService

    with (
        TokenService(tmp_path / "tok", "robot", "tok-pw") as svc,
        TokenRegistry(tmp_path / "treg", svc) as r,
    ):
        url = f"oci://{r.host}/team/m"
        monkeypatch.setenv("PW", "bad")
        got = cli(
            "push", "team/m", url, "--plain-http", "--username", "robot", "--password-env", "PW"
        )
        assert got.exit_code == 6 and "token service" in got.stderr and "401" in got.stderr
        monkeypatch.setenv("PW", "tok-pw")
        got = cli(
            "push",
            "team/m",
            url,
            "--plain-http",
            "--username",
            "robot",
            "--password-env",
            "PW",
            "--json",
        )
        assert got.exit_code == 0, got.stderr + r.log_text()
        assert any("scope=repository%3Ateam%2Fm%3Apull%2Cpush" in p for p in svc.requests)
        digest = json.loads(got.stdout)["digest"]
        seen = skopeo(
            "inspect",
            "--tls-verify=false",
            "--creds",
            "robot:tok-pw",
            "--raw",
            f"docker://{r.host}/team/m:v1",
        )
        assert seen.returncode == 0, seen.stderr
        assert "sha256:" + hashlib.sha256(seen.stdout.encode()).hexdigest() == digest


def test_unknown_registry_and_tampered_payload(src, cli, registry):
    port = free_port()
    got = cli("push", "team/m", f"oci://127.0.0.1:{port}/m", "--plain-http")
    assert got.exit_code == 6
    assert got.stderr.startswith("error: cannot reach") and len(got.stderr.splitlines()) <= 2
    info = src.get("team/m:v1")
    weight = info.path / "payload" / "model.pt"
    os.chmod(weight, 0o644)
    weight.write_bytes(b"x" * weight.stat().st_size)  # same size, other bytes
    got = cli("push", "team/m", f"oci://{registry.host}/m", "--plain-http")
    assert got.exit_code == 5, got.stderr
    assert "digest" in got.stderr and "Traceback" not in got.stderr
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/m")
    assert "v1" not in tags.stdout  # no manifest without its blobs


def test_bad_urls_are_exit_2(src, cli):
    assert cli("push", "team/m", "oci://u:p@host/m").exit_code == 2
    assert cli("push", "team/m", "oci://host/Upper").exit_code == 2
    assert cli("push", "team/m", "https://host/m").exit_code == 2
    assert cli("push", "team/m", "oci://host/m", "--username", "u").exit_code == 2


def test_parse_ref_and_docker_config(tmp_path, monkeypatch):
    ref = parse_ref("oci://127.0.0.1:5000/a/b:v3")
    assert (ref.host, ref.port, ref.repo, ref.tag) == ("127.0.0.1", 5000, "a/b", "v3")
    assert parse_ref("oci://h/a@sha256:" + "0" * 64).digest == "sha256:" + "0" * 64
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"https://h:5000": {"username": "u", "password": "hunter2"}}})
    )
    creds = auth.from_docker_config("h:5000")
    assert (
        creds is not None
        and creds.username == "u"
        and "hunter2" not in repr(creds)
        and creds.password == "hunter2"
    )
    assert auth.from_docker_config("other") is None
    challenge = auth.parse_challenge(
        'Bearer realm="https://t/token",service="reg",scope="repository:a:pull"'
    )
    assert challenge is not None and challenge.params["service"] == "reg"


# ------------------------------------------------------------------ mirrors
def _mirror_root(tmp_path: Path, host: str, model_file: Path) -> Path:
    root = tmp_path / "mroot"
    root.mkdir()
    (root / "registry.yaml").write_text(
        "oci_mirrors:\n"
        f"  - url: oci://{host}/mirror\n"
        "    stages: [release]\n"
        "    aliases: [champion, canary]\n"
        "    plain_http: true\n"
    )
    return root


def _tags(host: str, repo: str) -> dict[str, str]:
    listed = skopeo("list-tags", "--tls-verify=false", f"docker://{host}/{repo}")
    out = {}
    for tag in json.loads(listed.stdout)["Tags"] if listed.returncode == 0 else []:
        raw = skopeo(
            "inspect", "--tls-verify=false", "--raw", f"docker://{host}/{repo}:{tag}"
        ).stdout
        out[tag] = json.loads(raw)["annotations"]["org.opencontainers.image.version"]
    return out


def test_mirrors_follow_promote_and_alias_moves(tmp_path, cli, registry, model_file):
    root = _mirror_root(tmp_path, registry.host, model_file)
    assert cli("publish", "m", str(model_file), root_dir=root).exit_code == 0
    assert _tags(registry.host, "mirror/m") == {}  # dev is not mirrored
    assert cli("promote", "m", "--version", "v1", root_dir=root).exit_code == 0
    assert _tags(registry.host, "mirror/m") == {"v1": "v1", "release": "v1", "champion": "v1"}
    model_file.write_bytes(os.urandom(100))
    assert cli("publish", "m", str(model_file), root_dir=root).exit_code == 0
    got = cli("alias", "set", "m", "canary", "v2", root_dir=root)
    assert got.exit_code == 0, got.stderr
    assert _tags(registry.host, "mirror/m")["canary"] == "v2"
    assert cli("promote", "m", "--version", "v2", root_dir=root).exit_code == 0
    tags = _tags(registry.host, "mirror/m")
    assert tags["champion"] == "v2" and tags["release"] == "v2" and tags["v1"] == "v1"
    assert cli("oci", "status", "--json", root_dir=root).stdout.strip() == "[]"


def test_a_failing_mirror_warns_queues_and_sync_delivers(tmp_path, cli, model_file):
    port = free_port()
    host = f"127.0.0.1:{port}"
    root = _mirror_root(tmp_path, host, model_file)
    assert cli("publish", "m", str(model_file), root_dir=root).exit_code == 0
    got = cli("promote", "m", "--version", "v1", root_dir=root)
    assert got.exit_code == 0  # the change stands
    assert "warning: OCI mirror push of m:v1" in got.stderr and "oci sync" in got.stderr
    assert ModelRegistry(root).model_state("m").latest["release"] == 1
    status = json.loads(cli("oci", "status", "--json", root_dir=root).stdout)
    assert [(p["version"], p["tags"]) for p in status] == [("v1", ["v1", "release", "champion"])]
    assert status[0]["attempts"] == 1 and "cannot reach" in status[0]["error"]
    assert cli("oci", "sync", root_dir=root).exit_code == 6
    r = OciRegistry(tmp_path / "late")
    r.port = port
    with r:
        got = cli("oci", "sync", "--json", root_dir=root)
        assert got.exit_code == 0, got.stderr
        assert len(json.loads(got.stdout)["delivered"]) == 1
        assert _tags(host, "mirror/m") == {"v1": "v1", "release": "v1", "champion": "v1"}
    assert json.loads(cli("oci", "status", "--json", root_dir=root).stdout) == []


def test_bad_mirror_config_is_exit_2(tmp_path, cli):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "registry.yaml").write_text(
        "oci_mirrors:\n  - url: http://x/y\n    stages: [release]\n"
    )
    got = cli("list", root_dir=root)
    assert got.exit_code == 2 and "oci_mirrors[0].url" in got.stderr


def test_the_example_config_documents_a_mirror():
    from registry_cli.core.config import load_config_file
    from tests.conftest import REPO

    cfg = load_config_file(REPO / "registry.yaml.example")
    (mirror,) = cfg.oci_mirrors
    assert mirror.url == "oci://registry.example/models" and mirror.stages == ("release",)
    assert mirror.repository("faq-bot") == "oci://registry.example/models/faq-bot"
