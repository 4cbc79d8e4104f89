"""publish --license/--card/--sign-key/--attestation and source.ci. Real CLI subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from registry_cli.core.provenance import ci_source
from tests.test_sign import make_key

pytest.importorskip("model_signing")

CARD = "# Detector\n\nFinds helmets.\n\n<script>alert(1)</script>\n"
NO_CI = {v: "" for v in ("GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL", "JENKINS_HOME")}


def test_license_and_card_are_facts_shown(regctl_proc, model_file, tmp_path):
    card = tmp_path / "card.md"
    card.write_text(CARD)
    proc = regctl_proc(
        "publish", "team/det", str(model_file), "--license", "apache-2.0 OR mit",
        "--card", str(card), env=NO_CI,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    show = json.loads(regctl_proc("show", "team/det:v1", "--json", check=True).stdout)
    assert show["license"] == "Apache-2.0 OR MIT"
    assert show["card"] == CARD
    text = regctl_proc("show", "team/det:v1", check=True).stdout
    assert "Apache-2.0 OR MIT" in text and "Finds helmets." in text
    manifest = tmp_path / "registry" / "models" / "team" / "det" / "v1" / "manifest.json"
    assert json.loads(manifest.read_text())["license"] == "Apache-2.0 OR MIT"
    assert "ci" not in show["source"]


@pytest.mark.parametrize("expr", ["Foo-1.0", "MIT AND (", ""])
def test_invalid_license_publishes_nothing(regctl_proc, model_file, tmp_path, expr):
    proc = regctl_proc("publish", "team/det", str(model_file), "--license", expr)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "registry" / "models" / "team").exists()


def test_missing_card_publishes_nothing(regctl_proc, model_file, tmp_path):
    proc = regctl_proc("publish", "team/det", str(model_file), "--card", str(tmp_path / "no.md"))
    assert proc.returncode == 2 and "card file" in proc.stderr
    assert not (tmp_path / "registry" / "models" / "team").exists()


def test_sign_key_at_publish_and_attestation(regctl_proc, model_file, tmp_path):
    priv, pub = make_key(tmp_path / "keys", "builder")
    statement = tmp_path / "provenance.json"
    statement.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "model.pt", "digest": {"sha256": "00"}}],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {},
            }
        )
    )
    env = dict(
        NO_CI, GITHUB_ACTIONS="true", GITHUB_REPOSITORY="acme/det", GITHUB_SHA="abc123",
        GITHUB_RUN_ID="42", GITHUB_SERVER_URL="https://github.com", GITHUB_REF="refs/heads/main",
    )  # fmt: skip
    proc = regctl_proc(
        "publish", "team/det", str(model_file), "--sign-key", str(priv),
        "--attestation", str(statement), "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"]["ci"] == {
        "provider": "github-actions",
        "repository": "acme/det",
        "commit": "abc123",
        "run_url": "https://github.com/acme/det/actions/runs/42",
        "ref": "refs/heads/main",
    }
    vdir = tmp_path / "registry" / "models" / "team" / "det" / "v1"
    lib = subprocess.run(
        [sys.executable, "-m", "model_signing", "verify", "key", str(vdir / "payload"),
         "--signature", str(vdir / "signatures" / "builder.sig"), "--public_key", str(pub)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert lib.returncode == 0, lib.stderr
    served = tmp_path / "registry" / "dist" / "dev" / "team" / "det" / "versions" / "v1"
    assert (served / "attestations" / "provenance.intoto.jsonl").read_bytes() == (
        statement.read_bytes()
    )
    assert (served / "signatures" / "builder.sig").is_file()
    actions = [e["action"] for e in json.loads(regctl_proc("audit", "--json").stdout)]
    assert actions == ["publish", "attest", "sign"]
    assert regctl_proc("verify").returncode == 0


def test_bad_sign_key_or_attestation_publishes_nothing(regctl_proc, model_file, tmp_path):
    proc = regctl_proc("publish", "team/det", str(model_file), "--sign-key", str(tmp_path / "x"))
    assert proc.returncode == 2
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    proc = regctl_proc("publish", "team/det", str(model_file), "--attestation", str(bad))
    assert proc.returncode == 2 and "in-toto" in proc.stderr
    assert not (tmp_path / "registry" / "models" / "team").exists()


@pytest.mark.parametrize(
    ("env", "want"),
    [
        (
            {"GITLAB_CI": "true", "CI_PROJECT_PATH": "g/p", "CI_COMMIT_SHA": "c1",
             "CI_PIPELINE_URL": "https://gl/p/-/pipelines/7", "CI_COMMIT_REF_NAME": "main"},
            ("gitlab-ci", "g/p", "c1", "https://gl/p/-/pipelines/7"),
        ),
        (
            {"JENKINS_URL": "https://ci/", "GIT_URL": "git@h:r.git", "GIT_COMMIT": "c2",
             "BUILD_URL": "https://ci/job/x/3/"},
            ("jenkins", "git@h:r.git", "c2", "https://ci/job/x/3/"),
        ),
        (
            {"BUILDKITE": "true", "BUILDKITE_REPO": "git@h:b.git", "BUILDKITE_COMMIT": "c3",
             "BUILDKITE_BUILD_URL": "https://buildkite.com/o/p/builds/9"},
            ("buildkite", "git@h:b.git", "c3", "https://buildkite.com/o/p/builds/9"),
        ),
    ],
)  # fmt: skip
def test_ci_providers(env, want):
    got = ci_source(env)
    assert got is not None
    assert (got["provider"], got["repository"], got["commit"], got["run_url"]) == want


def test_no_ci_outside_ci():
    assert ci_source({"HOME": "/home/x", "PATH": os.defpath}) is None
