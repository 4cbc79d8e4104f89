"""The version -> OCI manifest mapping: stable bytes, CNCF media types, and back."""

from __future__ import annotations

import json

import pytest

from registry_cli.errors import BadInput, IntegrityError
from registry_cli.oci import mapping


def _facts(reg, model_file, tmp_path):
    card = tmp_path / "src" / "README.md"
    card.write_text("# a card\n")
    info = reg.publish("team/ppe", [model_file, card], metrics={"acc": 0.9}, tags={"ds": "x"})
    return info, json.loads((info.path / "manifest.json").read_bytes())


def test_same_version_same_bytes_and_digest_from_the_manifest(reg, model_file, tmp_path):
    info, facts = _facts(reg, model_file, tmp_path)
    one = mapping.artifact_of(facts)
    reg.promote("team/ppe", to="release")
    reg.set_alias("team/ppe", "canary", 1)
    again = json.loads((info.path / "manifest.json").read_bytes())
    two = mapping.artifact_of(again)
    assert one.manifest == two.manifest and one.config == two.config
    doc = json.loads(one.manifest)
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    assert doc["config"]["digest"] == mapping.digest_of(one.config)
    by_title = {
        layer["annotations"]["org.opencontainers.image.title"]: layer for layer in doc["layers"]
    }
    assert set(by_title) == {"model.pt", "README.md"}
    for f in info.files:
        layer = by_title[f["path"][len("payload/") :]]
        assert layer["digest"] == f"sha256:{f['sha256']}" and layer["size"] == f["size"]
    assert by_title["model.pt"]["mediaType"] == "application/vnd.cncf.model.weight.v1.raw"
    assert by_title["README.md"]["mediaType"] == "application/vnd.cncf.model.doc.v1.raw"
    assert doc["annotations"] == {
        "io.regctl.model": "team/ppe",
        "org.opencontainers.image.created": info.created_at,
        "org.opencontainers.image.version": "v1",
    }
    assert b" " not in one.manifest.replace(b"team/ppe", b"")  # canonical: no spaces
    config = json.loads(one.config)
    assert config["descriptor"]["name"] == "team/ppe" and config["descriptor"]["version"] == "v1"
    assert config["regctl"]["manifest"] == facts


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("payload/w/model.safetensors", "weight"),
        ("payload/config.json", "weight.config"),
        ("payload/MLmodel", "weight.config"),
        ("payload/LICENSE", "doc"),
        ("payload/docs/card.md", "doc"),
        ("payload/code/predict.py", "code"),
        ("payload/requirements.txt", "code"),
        ("payload/data/eval.csv", "dataset"),
        ("payload/strange.blob", "weight"),
    ],
)
def test_layer_media_types_by_file_kind(path, kind):
    assert mapping.media_type_of(path) == f"application/vnd.cncf.model.{kind}.v1.raw"


def test_reading_back_gives_the_same_facts_and_refuses_foreign_or_changed(
    reg, model_file, tmp_path
):
    _info, facts = _facts(reg, model_file, tmp_path)
    art = mapping.artifact_of(facts)
    back = mapping.facts_of(art.manifest, art.config, "x")
    assert back.facts == facts and back.manifest == art.manifest
    doc = json.loads(art.manifest)
    foreign = dict(doc, mediaType="application/vnd.docker.distribution.manifest.v2+json")
    with pytest.raises(BadInput, match="is not an OCI image manifest of a model"):
        mapping.facts_of(mapping.canonical(foreign), art.config, "x")
    with pytest.raises(BadInput, match="artifactType"):
        mapping.facts_of(
            mapping.canonical(dict(doc, artifactType="application/x")), art.config, "x"
        )
    with pytest.raises(IntegrityError, match="config blob does not match"):
        mapping.facts_of(art.manifest, art.config + b" ", "x")
    layers = [dict(doc["layers"][0], size=1)] + doc["layers"][1:]
    changed = dict(doc, layers=layers)
    with pytest.raises(IntegrityError, match="does not match the facts"):
        mapping.facts_of(mapping.canonical(changed), art.config, "x")


def test_signatures_travel_as_an_artifact_tagged_by_the_subject_digest(reg, model_file, tmp_path):
    _info, facts = _facts(reg, model_file, tmp_path)
    art = mapping.artifact_of(facts)
    sig = mapping.signature_artifact(art, [("b", b"two"), ("a", b"one")])
    doc = json.loads(sig.manifest)
    assert doc["subject"]["digest"] == art.digest
    assert mapping.signature_tag(art.digest) == "sha256-" + art.digest[7:] + ".sig"
    assert [s for s, _d, _n in mapping.parse_signatures(sig.manifest, "x")] == ["a", "b"]
