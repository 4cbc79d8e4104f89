"""regctl bom: a CycloneDX 1.6 ML-BOM, checked with cyclonedx-python-lib's own validator."""

from __future__ import annotations

import hashlib
import json

import pytest

pytest.importorskip("cyclonedx")


def validate(text: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, str(error)


@pytest.fixture
def lineage(regctl_proc, tmp_path, model_file):
    card = tmp_path / "card.md"
    card.write_text("# Det\n\nHelmets.\n")
    regctl_proc("publish", "team/det", str(model_file), "--metric", "accuracy=0.5", check=True)
    regctl_proc(
        "publish", "team/det", str(model_file.parent), "--metric", "accuracy=0.93",
        "--metric", "f1=0.9", "--tag", "task=detection", "--license", "Apache-2.0",
        "--card", str(card), "--derived-from", "team/det:v1", "--description", "second",
        check=True,
    )  # fmt: skip
    return tmp_path / "registry"


def test_bom_is_valid_and_complete(regctl_proc, lineage, tmp_path):
    out = tmp_path / "bom.json"
    proc = regctl_proc("bom", "team/det:v2", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    validate(text)
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    model = doc["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert (model["name"], model["version"]) == ("team/det", "v2")
    assert model["licenses"] == [{"expression": "Apache-2.0"}]
    manifest = lineage / "models" / "team" / "det" / "v2" / "manifest.json"
    manifest_sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert {"alg": "SHA-256", "content": manifest_sha} in model["hashes"]
    assert model["pedigree"]["ancestors"][0]["version"] == "v1"
    metrics = model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
    assert {"type": "accuracy", "value": "0.93"} in metrics
    assert model["modelCard"]["modelParameters"]["task"] == "detection"
    props = {p["name"]: p["value"] for p in model["modelCard"]["properties"]}
    assert props["regctl:card"] == "# Det\n\nHelmets.\n"
    files = {c["name"]: c for c in doc["components"]}
    facts = json.loads(manifest.read_text())
    assert set(files) == {f["path"] for f in facts["files"]}
    for f in facts["files"]:
        assert files[f["path"]]["hashes"] == [{"alg": "SHA-256", "content": f["sha256"]}]
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert sorted(deps[model["bom-ref"]]) == sorted(c["bom-ref"] for c in doc["components"])


def test_bom_to_stdout_and_minimal_version(regctl_proc, lineage):
    proc = regctl_proc("bom", "team/det:v1")
    assert proc.returncode == 0, proc.stderr
    validate(proc.stdout)
    model = json.loads(proc.stdout)["metadata"]["component"]
    assert "licenses" not in model and "pedigree" not in model


def test_bom_of_a_missing_version(regctl_proc, lineage):
    proc = regctl_proc("bom", "team/det:v7")
    assert proc.returncode == 3 and proc.stderr.startswith("error:")


def test_validator_rejects_a_broken_bom(regctl_proc, lineage):
    """The validation in the test is real: a document with a wrong type fails it."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    doc = json.loads(regctl_proc("bom", "team/det:v2", check=True).stdout)
    doc["metadata"]["component"]["modelCard"]["unknown"] = 1
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is not None
