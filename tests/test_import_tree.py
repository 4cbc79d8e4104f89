"""regctl import of an old FTP registry tree, as a folder and over a real pyftpdlib server.

The tree is written here by the old system's rules (seed: ftp-model-registry):
``/<stage>/<model>/LATEST`` ("v0005"), ``LATEST.json``, ``index.json`` with
camelCase keys, ``versions/v0003/bundle.tar.gz`` + ``manifest.json`` + ``payload/``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

MODEL = "classification-best-model"
PASSWORD = "old-ftp-pw"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bundle(files: dict[str, bytes]) -> bytes:
    """The same bytes for the same files (gzip header time fixed)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, data in sorted(files.items()):
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_old_tree(
    root: Path,
    versions=(1, 2, 3, 5),
    release=(2, 3),
    dev_latest=5,
    release_latest=3,
    model=MODEL,
) -> dict[int, dict]:
    """An old FTP registry tree; returns each version's manifest."""
    made: dict[int, tuple[bytes, dict, dict[str, bytes]]] = {}
    for n in versions:
        label = f"v{n:04d}"
        payload = {
            "model.pth": f"weights of {label} ".encode() * 200,
            "model-standard.pt": f"standard {label}".encode() * 50,
        }
        manifest = {
            "modelName": model,
            "version": label,
            "stage": "dev",
            "createdAt": f"2025-01-0{n}T10:00:00Z",
            "sourceType": "mlflow",
            "trackingUri": "http://user:secret@mlflow.local:5001",
            "runId": f"run{n}",
            "artifactPath": "model",
            "files": [
                {"path": f"payload/{p}", "size": len(d), "sha256": _sha(d)}
                for p, d in sorted(payload.items())
            ],
            "standardArtifacts": {"pytorch": "payload/model-standard.pt"},
            "metrics": {"accuracy": 0.8 + n / 100},
        }
        files = {f"payload/{p}": d for p, d in payload.items()}
        files["manifest.json"] = json.dumps(manifest).encode()
        made[n] = (_bundle(files), manifest, payload)
    for stage, members, latest in (
        ("dev", versions, dev_latest),
        ("release", release, release_latest),
    ):
        base = root / stage / model
        entries = []
        for n in members:
            bundle, manifest, payload = made[n]
            label = f"v{n:04d}"
            vdir = base / "versions" / label
            (vdir / "payload").mkdir(parents=True)
            (vdir / "bundle.tar.gz").write_bytes(bundle)
            (vdir / "manifest.json").write_text(json.dumps(manifest))
            for p, d in payload.items():
                (vdir / "payload" / p).write_bytes(d)
            entries.append(
                {
                    "version": label,
                    "createdAt": manifest["createdAt"],
                    "sha256": _sha(bundle),
                    "size": len(bundle),
                    "sourceType": "mlflow",
                }
            )
        label = f"v{latest:04d}"
        (base / "index.json").write_text(
            json.dumps({"modelName": model, "stage": stage, "latest": label, "versions": entries})
        )
        (base / "LATEST").write_text(label + "\n")
        (base / "LATEST.json").write_text(
            json.dumps(
                {
                    "version": label,
                    "sha256": _sha(made[latest][0]),
                    "size": len(made[latest][0]),
                    "updatedAt": "2025-02-01T00:00:00Z",
                }
            )
        )
    return {n: m for n, (_b, m, _p) in made.items()}


def corrupt(root: Path, label: str, stage: str = "dev") -> None:
    path = root / stage / MODEL / "versions" / label / "bundle.tar.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def ftp_server(tmp_path):
    """A real pyftpdlib server (not regctl serve-ftp) over the old tree, user mlops."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    tree = tmp_path / "old-ftp"
    tree.mkdir()
    authorizer = DummyAuthorizer()
    authorizer.add_user("mlops", PASSWORD, str(tree), perm="elr")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
    server = FTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1}, daemon=True)
    thread.start()
    try:
        yield tree, f"ftp://mlops@127.0.0.1:{server.address[1]}"
    finally:
        server.close_all()
        thread.join(timeout=10)


def _check_imported(cli, reg, location: str, *, bad: int | None = 2) -> None:
    versions = json.loads(cli("versions", MODEL, "--json").stdout)["versions"]
    want = [n for n in (1, 2, 3, 5) if n != bad]
    assert [v["version"] for v in versions] == [f"v{n}" for n in want]  # numbers kept, gaps too
    state = reg.model_state(MODEL)
    assert state.latest["dev"] == 5  # LATEST per stage kept
    assert state.latest["release"] == 3
    assert state.aliases["champion"] == 3
    released = {v["version"] for v in versions if "release" in v["stages"]}
    assert released == {f"v{n}" for n in (2, 3) if n != bad}
    show = json.loads(cli("show", f"{MODEL}:v3", "--json").stdout)
    assert show["created_at"] == "2025-01-03T10:00:00.000000Z"
    assert show["metrics"] == {"accuracy": pytest.approx(0.83)}
    assert show["preferred_weight"] == "payload/model-standard.pt"
    assert show["standard_artifacts"] == {"pytorch": "payload/model-standard.pt"}
    assert show["source"]["uri"] == f"{location}#{MODEL}:v0003"
    assert show["source"]["original"]["runId"] == "run3"
    assert "secret" not in json.dumps(show["source"])  # the old tracking URI's password
    assert {f["path"] for f in show["files"]} == {"payload/model.pth", "payload/model-standard.pt"}
    assert reg.verify(MODEL).ok


def test_folder_tree_with_a_corrupt_bundle(cli, reg, tmp_path):
    tree = tmp_path / "old"
    build_old_tree(tree)
    corrupt(tree, "v0002")
    res = cli("import", str(tree), "--json")
    assert res.exit_code == 5, res.stderr
    assert "1 version(s) failed their checks" in res.stderr
    rows = {r["source"].rsplit(":", 1)[1]: r for r in json.loads(res.stdout)}
    assert rows["v0002"]["action"] == "report" and "sha256" in rows["v0002"]["reason"]
    assert [rows[v]["action"] for v in ("v0001", "v0003", "v0005")] == ["imported"] * 3
    _check_imported(cli, reg, str(tree))
    assert not (reg.root / "models" / MODEL / "v2").exists()  # nothing of the bad version

    # fixed at the source: a rerun imports only what is new, under its own number
    build_again = tmp_path / "fixed"
    build_old_tree(build_again)
    for stage in ("dev", "release"):
        src = build_again / stage / MODEL / "versions" / "v0002" / "bundle.tar.gz"
        (tree / stage / MODEL / "versions" / "v0002" / "bundle.tar.gz").write_bytes(
            src.read_bytes()
        )
    res = cli("import", str(tree), "--json")
    assert res.exit_code == 0, res.stderr
    rows = {r["source"].rsplit(":", 1)[1]: r for r in json.loads(res.stdout)}
    assert {k: r["action"] for k, r in rows.items()} == {
        "v0001": "skip",
        "v0002": "imported",
        "v0003": "skip",
        "v0005": "skip",
    }
    # no version held v2: the late version keeps its own number; LATEST stays where it was
    assert rows["v0002"]["version"] == "v2"
    state = reg.model_state(MODEL)
    assert state.aliases["champion"] == 3 and state.latest["release"] == 3
    assert state.latest["dev"] == 5 and 2 in state.stages["release"]


def test_dry_run_writes_nothing_and_rerun_imports_nothing(cli, root, tmp_path):
    tree = tmp_path / "old"
    build_old_tree(tree)
    res = cli("import", str(tree), "--dry-run", "--json")
    assert res.exit_code == 0, res.stderr
    plan = json.loads(res.stdout)
    assert [(r["version"], r["action"]) for r in plan] == [
        ("v1", "import"),
        ("v2", "import"),
        ("v3", "import"),
        ("v5", "import"),
    ]
    assert set(plan[0]) >= {"model", "version", "source", "action"}
    assert not root.exists()
    human = cli("import", str(tree), "--dry-run")
    assert human.exit_code == 0 and "import" in human.stdout and not root.exists()
    assert cli("import", str(tree)).exit_code == 0
    audit_before = (root / "audit.jsonl").read_text()
    again = cli("import", str(tree), "--json")
    assert again.exit_code == 0
    assert {r["action"] for r in json.loads(again.stdout)} == {"skip"}
    assert (root / "audit.jsonl").read_text() == audit_before  # nothing changed


def test_clashing_local_numbers_move_above_in_order(cli, reg, tmp_path, model_file):
    tree = tmp_path / "old"
    build_old_tree(tree)
    reg.publish(MODEL, [model_file])  # v1 taken locally
    reg.publish(MODEL, [model_file])  # v2 too
    res = cli("import", str(tree), "--json")
    assert res.exit_code == 0, res.stderr
    got = {r["source"].rsplit(":", 1)[1]: r["version"] for r in json.loads(res.stdout)}
    assert got == {"v0001": "v3", "v0002": "v4", "v0003": "v5", "v0005": "v7"}  # gap kept
    assert reg.model_state(MODEL).aliases["champion"] == 5


def test_over_a_real_ftp_server(cli, reg, ftp_server, monkeypatch):
    tree, url = ftp_server
    build_old_tree(tree)
    corrupt(tree, "v0002")
    monkeypatch.setenv("OLD_FTP_PW", PASSWORD)
    res = cli("import", url, "--password-env", "OLD_FTP_PW", "--json")
    assert res.exit_code == 5, res.stderr
    assert PASSWORD not in res.stdout + res.stderr
    location = url.replace("mlops@", "")
    _check_imported(cli, reg, location)
    assert PASSWORD not in (reg.root / "audit.jsonl").read_text()


def test_ftp_password_rules(cli, root, ftp_server, tmp_path):
    _tree, url = ftp_server
    res = cli("import", url.replace("mlops@", f"mlops:{PASSWORD}@"))
    assert res.exit_code == 2 and "password inside the ftp:// URL" in res.stderr
    assert PASSWORD not in res.stderr
    res = cli("import", url)  # a named user and no password source, no terminal
    assert res.exit_code == 2 and "--password-env" in res.stderr
    wrong = tmp_path / "pw"
    wrong.write_text("not-it\n")
    res = cli("import", url, "--password-file", str(wrong))
    assert res.exit_code == 6 and "refused the login" in res.stderr
    assert not root.exists()


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda t: (t / "dev" / MODEL / "index.json").write_text("{not json"), "not valid JSON"),
        (
            lambda t: (
                (t / "qa" / MODEL).mkdir(parents=True)
                or (t / "qa" / MODEL / "index.json").write_text('{"versions": []}')
            ),
            "stage 'qa'",
        ),
        (lambda t: (t / "dev" / MODEL / "LATEST").write_text("latest-one\n"), "not a version"),
    ],
)
def test_malformed_tree_is_exit_2_and_imports_nothing(cli, root, tmp_path, spoil, message):
    tree = tmp_path / "old"
    build_old_tree(tree)
    spoil(tree)
    res = cli("import", str(tree))
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not root.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["s3://bucket/x"], "unknown source scheme 's3://'"),
        (["http://old.example/registry"], "unknown source scheme 'http://'"),
        (["sqlite"], "needs a PATH"),
        (["yaml-registry"], "needs a PATH"),
        (["/nonexistent/old-tree"], "is not a folder"),
    ],
)
def test_bad_sources_are_exit_2(cli, root, args, message):
    res = cli("import", *args)
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr
    assert not root.exists()


def test_not_enough_space_is_refused_before_anything_is_written(cli, root, tmp_path, monkeypatch):
    from registry_cli.storage import faults

    tree = tmp_path / "old"
    build_old_tree(tree)
    monkeypatch.setattr(faults, "free_bytes", lambda _path: 1000)
    res = cli("import", str(tree))
    assert res.exit_code == 2, res.stderr
    assert "not enough space" in res.stderr and "to import" in res.stderr
    assert not (root / "models").exists()


def test_a_regctl_root_imports_like_an_old_tree(cli, tmp_path, model_file):
    """The docs say a regctl root (its dist/) reads the same way: numbers, stages,
    champion and facts come across."""
    from registry_cli import ModelRegistry

    old = ModelRegistry(tmp_path / "other-root")
    old.publish("team/cls", [model_file], metrics={"acc": 0.9}, tags={"data": "v1"})
    old.publish("team/cls", [model_file], metrics={"acc": 0.95})
    old.publish("team/cls", [model_file])
    old.promote("team/cls", version=2)
    res = cli("import", str(tmp_path / "other-root"), "--json")
    assert res.exit_code == 0, res.stderr
    assert [r["version"] for r in json.loads(res.stdout)] == ["v1", "v2", "v3"]
    got = json.loads(cli("show", "team/cls@champion", "--json").stdout)
    assert got["version"] == "v2" and got["metrics"] == {"acc": 0.95}
    assert got["created_at"] == old.get("team/cls:v2").created_at
    first = json.loads(cli("show", "team/cls:v1", "--json").stdout)
    assert first["tags"] == {"data": "v1"}
    assert cli("resolve", "team/cls", "--stage", "dev").stdout.strip() == "v3"


def test_a_failure_midway_leaves_complete_versions_and_a_rerun_finishes(cli, reg, tmp_path):
    """v0003's bundle cannot be read (exit 6): v1 and v2 are in and complete, nothing of
    v3 or v5; once it can be read, a rerun ends as an uninterrupted import does."""
    tree = tmp_path / "old"
    build_old_tree(tree)
    bundle = tree / "dev" / MODEL / "versions" / "v0003" / "bundle.tar.gz"
    good = bundle.read_bytes()
    bundle.unlink()
    bundle.mkdir()  # reading it fails: a transfer error, not a bad version
    res = cli("import", str(tree))
    assert res.exit_code == 6, res.stderr
    assert "v0003" in res.stderr
    state = reg.model_state(MODEL)
    assert list(state.versions) == [1, 2]
    assert reg.verify(MODEL).ok
    assert not (reg.root / "models" / MODEL / "v3").exists()
    assert not list((reg.root / ".regctl" / "tmp").iterdir())  # no scratch left behind

    bundle.rmdir()
    bundle.write_bytes(good)
    assert cli("import", str(tree)).exit_code == 0
    whole = tmp_path / "whole"
    assert cli("import", str(tree), root_dir=whole).exit_code == 0
    for ref in ("versions", "list"):
        args = [ref, MODEL, "--json"] if ref == "versions" else [ref, "--json"]
        assert cli(*args).stdout.replace(str(reg.root), "R") == cli(
            *args, root_dir=whole
        ).stdout.replace(str(whole), "R")
