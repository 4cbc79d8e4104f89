"""``regctl export --oci-layout`` and ``regctl import oci-layout:DIR``: air-gap round
trips (numbers, exact facts, lifecycle, signatures), tampering, reruns, and skopeo
with a real docker-registry as the independent OCI client."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.core import signatures
from registry_cli.oci import layout as oci_layout
from tests.oci_registry import OciRegistry, have_registry, skopeo
from tests.test_sign import make_key

needs_registry = pytest.mark.skipif(not have_registry(), reason="docker-registry/skopeo missing")


@pytest.fixture
def source(tmp_path, model_file):
    """A root with team/ppe v1..v3: v2 released (champion), v3 candidate, v1 canary,
    v2 signed; and a second model."""
    reg = ModelRegistry(tmp_path / "a")
    card = model_file.parent / "README.md"
    card.write_text("# ppe\n")
    reg.publish("team/ppe", [model_file, card], metrics={"acc": 0.8}, tags={"ds": "d1"})
    model_file.write_bytes(os.urandom(2048))
    reg.publish("team/ppe", [model_file, card], metrics={"acc": 0.9}, description="two")
    reg.promote("team/ppe", version="v2")
    model_file.write_bytes(os.urandom(1024))
    reg.publish("team/ppe", [model_file], derived_from="team/ppe:v2")
    reg.set_alias("team/ppe", "canary", 1)
    key, _pub = make_key(tmp_path / "keys", "alice")
    signatures.sign(reg, "team/ppe:v2", key, "alice")
    reg.publish("other", [card])
    return reg


def _manifest(reg: ModelRegistry, name: str, v: int) -> bytes:
    return (reg.store.local_path(f"models/{name}/v{v}") / "manifest.json").read_bytes()


def test_round_trip_keeps_numbers_facts_lifecycle_and_signatures(source, cli, tmp_path):
    out = tmp_path / "layout"
    got = cli(
        "export", "team/ppe:v1", "team/ppe:v2", "team/ppe:v3", "other", "--oci-layout",
        str(out), "--json", root_dir=source.root,
    )  # fmt: skip
    assert got.exit_code == 0, got.stderr
    report = json.loads(got.stdout)
    assert report["blobs_linked"] >= 4 and report["blobs_copied"] == 0
    index = json.loads((out / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}
    assert {"team/ppe:v1", "team/ppe:champion", "team/ppe:release", "other:v1"} <= refs
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    payloads = {
        os.stat(source.get(f"team/ppe:v{v}").path / f["path"]).st_ino: f["sha256"]
        for v in (1, 2, 3)
        for f in source.get(f"team/ppe:v{v}").files
    }
    for f in source.get("team/ppe:v2").files:  # a blob is a payload file itself (linked)
        blob = out / "blobs" / "sha256" / f["sha256"]
        assert payloads.get(blob.stat().st_ino) == f["sha256"]

    dest = tmp_path / "b"
    got = cli("import", f"oci-layout:{out}", "--json", root_dir=dest)
    assert got.exit_code == 0, got.stderr
    assert sorted(r["action"] for r in json.loads(got.stdout)) == ["imported"] * 4
    reg = ModelRegistry(dest)
    for v in (1, 2, 3):
        assert _manifest(reg, "team/ppe", v) == _manifest(source, "team/ppe", v)
    assert _manifest(reg, "other", 1) == _manifest(source, "other", 1)
    state, was = reg.model_state("team/ppe"), source.model_state("team/ppe")
    assert state.all_aliases() == {"canary": 1, "candidate": 3, "champion": 2}
    assert state.latest == was.latest
    assert reg.get("team/ppe:v3").derived_from == "team/ppe:v2"
    assert signatures.signature_names(reg.store, "team/ppe", 2) == ["alice"]
    sig = "models/team/ppe/v2/signatures/alice.sig"
    assert reg.store.read(sig) == source.store.read(sig)
    report = signatures.verify(reg, "team/ppe:v2", [tmp_path / "keys" / "alice.pub"])
    assert report.ok, report.problems
    assert reg.verify().ok

    # a rerun imports nothing and changes nothing; a second export yields the same digests
    audit_before = (dest / "audit.jsonl").read_bytes()
    again = cli("import", f"oci-layout:{out}", "--json", root_dir=dest)
    assert again.exit_code == 0 and {r["action"] for r in json.loads(again.stdout)} == {"skip"}
    assert (dest / "audit.jsonl").read_bytes() == audit_before
    out2 = tmp_path / "layout2"
    cli("export", "team/ppe:v2", "--oci-layout", str(out2), root_dir=dest)
    digests = {m["digest"] for m in json.loads((out2 / "index.json").read_text())["manifests"]}
    assert report and digests <= {m["digest"] for m in index["manifests"]}


def _tamper(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    os.unlink(path)  # the blob is a hard link of the source root's file: never change that
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["layer", "config", "manifest", "signature"])
def test_a_tampered_version_is_exit_5_and_nothing_of_it_is_imported(source, cli, tmp_path, what):
    out = tmp_path / "layout"
    cli("export", "team/ppe:v1", "team/ppe:v2", "--oci-layout", str(out), root_dir=source.root)
    v2 = source.get("team/ppe:v2")
    own = next(f["sha256"] for f in v2.files if f["path"] == "payload/model.pt")  # not in v1
    digest = next(
        m["digest"] for m in json.loads((out / "index.json").read_text())["manifests"]
        if m["annotations"].get("org.opencontainers.image.version") == "v2"
    )  # fmt: skip
    manifest = json.loads((out / "blobs/sha256" / digest[7:]).read_bytes())
    blob = {
        "layer": own,
        "config": manifest["config"]["digest"][7:],
        "manifest": digest[7:],
        "signature": hashlib.sha256(
            source.store.read("models/team/ppe/v2/signatures/alice.sig")
        ).hexdigest(),
    }[what]
    _tamper(out / "blobs" / "sha256" / blob)
    dest = tmp_path / "b"
    got = cli("import", f"oci-layout:{out}", "--json", root_dir=dest)
    assert got.exit_code == 5, got.stderr
    assert got.stderr.startswith("error: 1 version(s) failed their checks")
    rows = {r["source"]: r for r in json.loads(got.stdout)}
    bad = [r for r in rows.values() if r["action"] == "report"]
    assert len(bad) == 1 and bad[0]["version"] is None
    reg = ModelRegistry(dest)
    assert [v.version for v in reg.list_versions("team/ppe")] == [1]
    assert not (dest / "models/team/ppe/v2").exists()
    assert not list(dest.rglob(own))  # no byte of it written, blob or payload
    assert not any(p.name == "model.pt" and p.stat().st_size == 2048 for p in dest.rglob("*"))


def test_bad_layouts_are_one_line_and_exit_2_or_3(source, cli, tmp_path):
    dest = tmp_path / "b"
    got = cli("import", f"oci-layout:{tmp_path / 'nowhere'}", root_dir=dest)
    assert got.exit_code == 3 and got.stderr.startswith("error: no OCI image layout at")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "x").write_text("x")
    got = cli("import", f"oci-layout:{plain}", root_dir=dest)
    assert got.exit_code == 2 and "is not an OCI image layout" in got.stderr
    got = cli("export", "team/ppe:v1", "--oci-layout", str(plain), root_dir=source.root)
    assert got.exit_code == 2 and "neither empty nor an OCI image layout" in got.stderr
    got = cli("export", "team/ppe:v9", "--oci-layout", str(tmp_path / "n"), root_dir=source.root)
    assert got.exit_code == 3 and not (tmp_path / "n").exists()
    got = cli("export", "team/ppe:v1", root_dir=source.root)
    assert got.exit_code == 2 and "--oci-layout DIR" in got.stderr
    # a foreign manifest (a container image) in the layout: exit 2, nothing imported
    out = tmp_path / "layout"
    cli("export", "team/ppe:v1", "--oci-layout", str(out), root_dir=source.root)
    index = json.loads((out / "index.json").read_text())
    image = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": "sha256:" + "0" * 64, "size": 2}, "layers": []}
    ).encode()  # fmt: skip
    sha = hashlib.sha256(image).hexdigest()
    (out / "blobs/sha256" / sha).write_bytes(image)
    index["manifests"].append(
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{sha}",
         "size": len(image), "annotations": {"org.opencontainers.image.ref.name": "app"}}
    )  # fmt: skip
    (out / "index.json").write_text(json.dumps(index))
    got = cli("import", f"oci-layout:{out}", root_dir=dest)
    assert got.exit_code == 2 and "artifactType None is not a model" in got.stderr
    assert not (dest / "models").exists()


@needs_registry
def test_skopeo_carries_an_export_to_a_registry_and_back(source, cli, tmp_path):
    out = tmp_path / "layout"
    cli("export", "team/ppe@champion", "--oci-layout", str(out), root_dir=source.root)
    art = oci_layout.read(out)[0].artifact
    assert art is not None
    with OciRegistry(tmp_path / "registry") as registry:
        for tag in ("v2", "champion"):
            got = skopeo(
                "copy", "--dest-tls-verify=false", f"oci:{out}:{tag}",
                f"docker://{registry.host}/team/ppe:{tag}",
            )  # fmt: skip
            assert got.returncode == 0, got.stderr
        got = skopeo(
            "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/team/ppe:v2"
        )
        assert got.returncode == 0 and got.stdout.encode() == art.manifest  # the same bytes
        back = tmp_path / "back"
        got = skopeo(
            "copy", "--src-tls-verify=false", f"docker://{registry.host}/team/ppe:champion",
            f"oci:{back}:champion",
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
    dest = tmp_path / "b"  # regctl reads what skopeo wrote
    got = cli("import", f"oci-layout:{back}", "--json", root_dir=dest)
    assert got.exit_code == 0, got.stderr
    assert _manifest(ModelRegistry(dest), "team/ppe", 2) == _manifest(source, "team/ppe", 2)


def test_export_from_an_s3_root_copies_verified_blobs(s3_root, cli, tmp_path, model_file):
    reg = ModelRegistry(s3_root)
    reg.publish("team/ppe", [model_file], metrics={"acc": 0.5})
    out = tmp_path / "layout"
    got = cli("export", "team/ppe:v1", "--oci-layout", str(out), "--json", root_dir=s3_root)
    assert got.exit_code == 0, got.stderr
    report = json.loads(got.stdout)
    assert report["blobs_copied"] == 1 and report["blobs_linked"] == 0
    sha = reg.get("team/ppe:v1").files[0]["sha256"]
    assert (out / "blobs/sha256" / sha).read_bytes() == model_file.read_bytes()
    dest = tmp_path / "b"
    assert cli("import", f"oci-layout:{out}", root_dir=dest).exit_code == 0
    facts = reg.store.read("models/team/ppe/v1/manifest.json")
    assert (dest / "models/team/ppe/v1/manifest.json").read_bytes() == facts
