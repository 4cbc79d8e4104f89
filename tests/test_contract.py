"""The Registry contract: the same tests, unchanged, on every backend.

``backend_reg`` is a folder root, an ``s3://`` root on moto's server, or a real
``regctl serve-registry`` on loopback (one per module, over a folder root, with a
token). Each test uses its own model names. Whole results are compared: every
field of every dataclass, normalised only where backends must differ (absolute
paths, times, actor names); the first backend's document of a test is the
reference the next backends must equal, beside the literal expectations.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from registry_cli import errors
from registry_cli.cli.main import app
from registry_cli.core.contract import Registry
from registry_cli.core.registry import ModelRegistry
from registry_cli.core.signature import signature_from_shape
from registry_cli.remote.registry import RemoteRegistry
from registry_cli.server.launch import ServeRegistryProcess
from tests.test_server import make_root, server_env

BACKENDS = ["folder", "s3", "remote"]
REFERENCE: dict[str, Any] = {}  # test id without the backend -> the first backend's document


@dataclasses.dataclass
class Backend:
    kind: str
    reg: Registry
    cli_args: list[str]  # the global options that open this registry
    where: str  # the root's location as messages name it
    root_reg: ModelRegistry  # the root itself (for a server: its root, on this machine)

    def cli(self, *args: str) -> Any:
        res = CliRunner().invoke(app, [*self.cli_args, *args])
        if res.exception and not isinstance(res.exception, SystemExit):
            raise res.exception
        return res


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``regctl serve-registry`` over a folder root for the module (stopped by its handle)."""
    tmp = tmp_path_factory.mktemp("contract")
    tokens = make_root(tmp / "registry")
    token_file = tmp / "token"
    token_file.write_text(tokens["admin"] + "\n")
    proc = ServeRegistryProcess(tmp / "registry", log=tmp / "server.log", env=server_env(tmp))
    proc.start()
    root = tmp / "registry"
    yield {"url": proc.url, "token": tokens["admin"], "token_file": token_file, "root": root}
    assert proc.stop() == 0


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Backend:
    if request.param == "remote":
        srv = request.getfixturevalue("server")
        reg: Registry = RemoteRegistry(srv["url"], token=srv["token"])
        args = ["--remote", srv["url"], "--token-file", str(srv["token_file"])]
        return Backend("remote", reg, args, str(srv["root"]), ModelRegistry(srv["root"]))
    root: Any = request.getfixturevalue("s3_root") if request.param == "s3" else tmp_path / "reg"
    local = ModelRegistry(root)
    local.init()
    return Backend(request.param, local, ["--root", str(root)], str(local.root), local)


@pytest.fixture
def same_everywhere(request):
    """``check(doc)``: ``doc`` equals the document the first backend gave in this test."""
    key = re.sub(r"\[(folder|s3|remote)\]", "", request.node.nodeid)

    def check(doc: Any) -> None:
        if key not in REFERENCE:
            REFERENCE[key] = doc
        here, first = _flat(doc), _flat(REFERENCE[key])
        differ = {k: (here.get(k), first.get(k)) for k in here.keys() | first.keys()
                  if here.get(k, KeyError) != first.get(k, KeyError)}  # fmt: skip
        assert not differ, f"differs from the first backend (here, there): {differ}"
        assert doc == REFERENCE[key]

    return check


@pytest.fixture
def files(tmp_path) -> list[str]:
    (tmp_path / "run" / "weights").mkdir(parents=True)
    (tmp_path / "run" / "weights" / "best.pt").write_bytes(b"w" * 5000)
    (tmp_path / "run" / "config.yaml").write_text("lr: 0.1\n")
    (tmp_path / "extra.onnx").write_bytes(b"o" * 100)
    return [str(tmp_path / "run"), str(tmp_path / "extra.onnx")]


def _flat(doc: Any, at: str = "") -> dict[str, Any]:
    if isinstance(doc, dict):
        return {k: v for key, val in doc.items() for k, v in _flat(val, f"{at}.{key}").items()}
    if isinstance(doc, list):
        return {k: v for i, val in enumerate(doc) for k, v in _flat(val, f"{at}[{i}]").items()}
    return {at: doc}


# --------------------------------------------------------------------------- normalising
TIMES = {"created_at", "time", "expires_at", "mtime"}
ACTORS = {"created_by", "actor", "uploaded_by"}


def norm(value: Any, key: str = "") -> Any:
    """A result as plain data, with what must differ between backends replaced."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        out = {k: norm(v, k) for k, v in value.items() if k != "uploaded_by"}  # an actor
        if key == "bundle" and out.get("sha256"):  # the bundle holds version.yaml: times
            out["sha256"] = "<sha256>"
        return out
    if isinstance(value, (list, tuple)):
        return [norm(v, key) for v in value]
    if key in TIMES and value:
        return "<time>"
    if key in ACTORS and value:
        return "<actor>"
    if isinstance(value, Path) or (isinstance(value, str) and os.path.isabs(value)):
        text = str(value)
        return "<abs>/" + text.rsplit("/models/", 1)[1] if "/models/" in text else "<abs>"
    return value


def version_doc(info: Any) -> dict[str, Any]:
    doc = norm(info)
    doc.pop("manifest")  # manifest.json is read on the root's machine only (see report)
    return doc


def unique(name: str, request) -> str:
    """A model name of this test (folder and s3 roots are the test's own; the remote root,
    shared by the module, sees each test once)."""
    return f"c/{name}"


# --------------------------------------------------------------------------- publish
def test_publish_with_every_metadata_key(backend, files, request, same_everywhere):
    reg = backend.reg
    name = unique("meta", request)
    first = reg.publish(name, files, metrics={"acc": 0.5})
    info = reg.publish(
        name,
        files,
        metrics={"acc": 0.91, "loss": 0.2},
        params={"lr": "0.1", "epochs": "3"},
        tags={"ds": "a", "team": "vision"},
        description="the second one",
        derived_from=f"{name}@candidate",
        signature=signature_from_shape("1,3,8", "float16"),
        set_latest=False,
        set_alias=False,
    )
    assert first.vname == "v1" and info.vname == "v2"
    assert info.description == "the second one" and info.derived_from == f"{name}:v1"
    assert info.metrics == {"acc": 0.91, "loss": 0.2} and info.params == {
        "lr": "0.1",
        "epochs": "3",
    }
    assert info.tags == {"ds": "a", "team": "vision"} and info.aliases == []
    assert info.signature == signature_from_shape("1,3,8", "float16")
    assert {f["path"] for f in info.files} == {
        "payload/run/weights/best.pt",
        "payload/run/config.yaml",
        "payload/extra.onnx",
    }
    shown = reg.get(f"{name}:v2")
    assert version_doc(shown) == version_doc(info)
    assert reg.get(f"{name}:latest", stage="dev").vname == "v1"  # --no-latest
    assert reg.get(f"{name}@candidate").vname == "v1"  # --no-alias
    summary = [m for m in reg.list_models() if m.name == name]
    assert [norm(m) for m in summary] == [
        {
            "name": name,
            "versions": 2,
            "latest": "v2",
            "aliases": {"candidate": "v1"},
            "stages": {"dev": "v1", "release": None},
            "description": None,  # the model's own description (importers set it)
        }
    ]
    # a model's own description (importers bring one) is listed by every backend
    backend.root_reg.states.change(name, lambda state: setattr(state, "description", "model"))
    assert [m.description for m in reg.list_models() if m.name == name] == ["model"]
    same_everywhere(
        {
            "publish": version_doc(info),
            "first": version_doc(first),
        }
    )


def test_publish_through_the_cli_gives_the_same_documents(backend, files, request, same_everywhere):
    import json

    name = unique("cli", request)
    res = backend.cli(
        "publish", name, *files, "--metric", "acc=0.7", "--param", "lr=0.1", "--tag", "ds=b",
        "--description", "from the CLI", "--example-shape", "1,4", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = norm(json.loads(res.stdout))
    assert doc["description"] == "from the CLI" and doc["signature"]["inputs"]
    shown = backend.cli("show", f"{name}:v1", "--json")
    assert norm(json.loads(shown.stdout)) == doc
    same_everywhere(doc)


# --------------------------------------------------------------------------- reading
def test_versions_list_and_every_reference_form(backend, files, request, same_everywhere):
    reg = backend.reg
    name = unique("refs", request)
    for acc in (0.7, 0.9, 0.8):
        reg.publish(name, files[1:], metrics={"acc": acc})
    reg.promote(name, version="v2")
    refs = {
        name: {},
        f"{name}:v1": {},
        f"{name}:latest": {},
        f"{name}:best": {"metric": "acc"},
        f"{name}:best/min": {"metric": "acc", "mode": "min"},
        f"{name}@candidate": {},
        f"{name}@champion": {},
        f"{name}:latest/release": {"stage": "release"},
        f"{name}:latest/dev": {"stage": "dev"},
    }
    got = {}
    for key, options in refs.items():
        ref = (
            key.split("/min")[0]
            .replace(":latest/release", ":latest")
            .replace(":latest/dev", ":latest")
        )
        got[key] = reg.resolve(ref, **options).vname
        assert version_doc(reg.get(ref, **options)) == version_doc(reg.resolve(ref, **options))
    assert got == {
        name: "v3",
        f"{name}:v1": "v1",
        f"{name}:latest": "v3",
        f"{name}:best": "v2",
        f"{name}:best/min": "v1",
        f"{name}@candidate": "v3",
        f"{name}@champion": "v2",
        f"{name}:latest/release": "v2",
        f"{name}:latest/dev": "v3",
    }
    quick = reg.get(f"{name}:v1", with_bundle=False)
    assert quick.vname == "v1"
    versions = [version_doc(v) for v in reg.list_versions(name)]
    released = [v.vname for v in reg.list_versions(name, stage="release")]
    assert [v["version"] for v in versions] == [1, 2, 3] and released == ["v2"]
    summary = [norm(m) for m in reg.list_models() if m.name == name]
    assert summary == [
        {
            "name": name,
            "versions": 3,
            "latest": "v3",
            "aliases": {"candidate": "v3", "champion": "v2"},
            "stages": {"dev": "v3", "release": "v2"},
            "description": None,
        }
    ]
    same_everywhere(
        {
            "versions": [
                {k: v for k, v in d.items() if k not in ("manifest", "name")} for d in versions
            ],
            "show": version_doc(reg.get(f"{name}@champion")),
            "quick": version_doc(quick),
        }
    )


# --------------------------------------------------------------------------- lifecycle
def test_promote_rollback_archive_aliases_and_tags(backend, files, request, same_everywhere):
    reg = backend.reg
    name = unique("life", request)
    for _ in range(3):
        reg.publish(name, files[1:])
    steps = [
        reg.promote(name, version="v1"),
        reg.promote(name, version="v1"),  # nothing changed
        reg.promote(name),  # @candidate: v3
        reg.promote(
            name, version="v2", to="release", force=True, reason="hotfix", set_latest=False
        ),
        reg.rollback(name),
        reg.set_alias(name, "canary", "v2"),
        reg.set_alias(name, "canary", 2),
        reg.tag(name, "v2", {"owner": "qa", "x": "1"}),
        reg.tag(name, 2, None, ["x"]),
        reg.remove_alias(name, "canary"),
        reg.archive(name, "v2", reason="bad"),
        reg.archive(name, "v2"),
    ]
    assert [s.action for s in steps] == [
        "promote", "promote", "promote", "promote", "rollback", "alias-set", "alias-set",
        "tag", "tag", "alias-rm", "archive", "archive",
    ]  # fmt: skip
    assert steps[1].noop and "nothing changed" in steps[1].message
    assert steps[-1].noop and "already archived" in steps[-1].message
    assert steps[4].version == "v3"
    archived = reg.get(f"{name}:v2")
    assert archived.status == "archived" and archived.tags == {"owner": "qa"}
    same_everywhere(
        {
            "steps": [norm(step) for step in steps],
            "after": version_doc(archived),
            "champion": reg.get(f"{name}@champion").vname,
        }
    )


def test_audit(backend, files, request, same_everywhere):
    reg = backend.reg
    name = unique("audit", request)
    reg.publish(name, files[1:])
    reg.promote(name)
    reg.tag(name, "v1", {"k": "v"})
    log = reg.audit(name)
    assert [e["action"] for e in log.entries] == ["publish", "promote", "tag"]
    assert log.damaged_lines == []
    assert reg.audit(name, 2).entries == log.entries[-2:]
    assert reg.audit(name, 0).entries == []
    assert {e["actor"] for e in log.entries} == {
        "tok-admin" if backend.kind == "remote" else "tester"
    }
    same_everywhere([norm(e) for e in log.entries])


# --------------------------------------------------------------------------- errors
def _error_cases(name: str) -> list[tuple[str, Any, list[str], type[errors.RegctlError]]]:
    """(label, a call on the registry, the same as CLI arguments, the class)."""
    return [
        ("bad name", lambda r: r.get("bad name!"), ["show", "bad name!"], errors.BadInput),
        ("bad publish name", lambda r: r.publish("Bad Name", []), ["publish", "Bad Name", "x"],
         errors.BadInput),
        ("force without reason", lambda r: r.promote(name, force=True),
         ["promote", name, "--force"], errors.BadInput),
        ("bad stage", lambda r: r.list_versions(name, stage="nope"),
         ["versions", name, "--stage", "nope"], errors.BadInput),
        ("bad audit name", lambda r: r.audit("bad name!"), ["audit", "bad name!"],
         errors.BadInput),
        ("negative limit", lambda r: r.audit(name, -1), ["audit", name, "--limit", "-1"],
         errors.BadInput),
        ("nothing to tag", lambda r: r.tag(name, "v1"), ["tag", name, "v1"], errors.BadInput),
        ("bad alias", lambda r: r.set_alias(name, "Bad Alias", "v1"),
         ["alias", "set", name, "Bad Alias", "v1"], errors.BadInput),
        ("no model", lambda r: r.get(f"{name}-none"), ["show", f"{name}-none"], errors.NotFound),
        ("no version", lambda r: r.get(f"{name}:v9"), ["show", f"{name}:v9"], errors.NotFound),
        ("no alias", lambda r: r.get(f"{name}@ghost"), ["show", f"{name}@ghost"], errors.NotFound),
        ("rm no alias", lambda r: r.remove_alias(name, "ghost"), ["alias", "rm", name, "ghost"],
         errors.NotFound),
        ("no versions of", lambda r: r.list_versions(f"{name}-none"),
         ["versions", f"{name}-none"], errors.NotFound),
        ("archive no version", lambda r: r.archive(name, "v9"), ["archive", name, "v9"],
         errors.NotFound),
        ("publish missing file", lambda r: r.publish(name, ["/nonexistent/model.pt"]),
         ["publish", name, "/nonexistent/model.pt"], errors.NotFound),
        ("rollback without champion", lambda r: r.rollback(name), ["rollback", name],
         errors.RuleViolation),
        ("reserved alias", lambda r: r.set_alias(name, "champion", "v1"),
         ["alias", "set", name, "champion", "v1"], errors.RuleViolation),
        ("promote the champion past the last stage", lambda r: r.promote(name, to="dev"),
         ["promote", name, "--to", "dev"], errors.RuleViolation),
    ]  # fmt: skip


def test_every_error_class_and_exit_code(backend, files, request, same_everywhere):
    reg = backend.reg
    name = unique("err", request)
    reg.publish(name, files[1:])
    seen = []
    for label, call, argv, cls in _error_cases(name):
        with pytest.raises(errors.RegctlError) as caught:
            call(reg)
        exc = caught.value
        assert type(exc) is cls, (label, type(exc), exc.message)
        res = backend.cli(*argv)
        assert res.exit_code == cls.exit_code, (label, res.exit_code, res.stderr)
        assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr, label
        message = exc.message.replace(backend.where, "<root>")
        seen.append((label, type(exc).__name__, message, exc.hint))
    same_everywhere(seen)
    # nothing of the refused changes happened
    assert [e["action"] for e in reg.audit(name).entries] == ["publish"]


def test_integrity_errors_are_the_same_class(backend, files, request, tmp_path):
    """A damaged manifest.json on the root is an IntegrityError (exit 5) everywhere."""
    reg = backend.reg
    name = unique("integ", request)
    reg.publish(name, files[1:])
    key = f"models/{name}/v1/manifest.json"
    backend.root_reg.store.put(key, b"{not json")
    with pytest.raises(errors.IntegrityError):
        reg.get(f"{name}:v1")
    assert backend.cli("show", f"{name}:v1").exit_code == 5


GATES = "gates:\n  release:\n    metrics: {acc: '>= 0.9'}\n    tags: [dataset]\n"


@pytest.fixture(scope="module")
def gated_server(tmp_path_factory):
    """A second server, over a root whose release stage has a gate."""
    tmp = tmp_path_factory.mktemp("gated")
    (tmp / "registry").mkdir()
    (tmp / "registry" / "registry.yaml").write_text(GATES)
    tokens = make_root(tmp / "registry")
    proc = ServeRegistryProcess(tmp / "registry", log=tmp / "server.log", env=server_env(tmp))
    proc.start()
    yield {"url": proc.url, "token": tokens["admin"]}
    assert proc.stop() == 0


@pytest.fixture(params=BACKENDS)
def gated(request, tmp_path) -> Registry:
    if request.param == "remote":
        srv = request.getfixturevalue("gated_server")
        return RemoteRegistry(srv["url"], token=srv["token"])
    root: Any = request.getfixturevalue("s3_root") if request.param == "s3" else tmp_path / "g"
    ModelRegistry(root).init()
    ModelRegistry(root).store.put("registry.yaml", GATES.encode())
    return ModelRegistry(root)


def test_a_failed_gate_is_gate_failed_everywhere(gated, files, same_everywhere):
    name = "c/gate"
    gated.publish(name, files[1:], metrics={"acc": 0.5})
    with pytest.raises(errors.GateFailed) as caught:
        gated.promote(name)
    exc = caught.value
    assert len(exc.failures) == 2 and exc.exit_code == 4
    forced = gated.promote(name, force=True, reason="known low")
    assert forced.version == "v1" and gated.get(f"{name}@champion").vname == "v1"
    same_everywhere({"error": [exc.message, exc.hint, exc.failures], "forced": norm(forced)})


def test_remote_failures_are_remote_errors(server, tmp_path):
    """Only a server can refuse a token or be unreachable: RemoteError, exit 6."""
    for reg in (
        RemoteRegistry(server["url"], token="rgt_wrong"),
        RemoteRegistry("http://127.0.0.1:9", token="x"),
    ):
        with pytest.raises(errors.RemoteError):
            reg.list_models()
    bad = tmp_path / "bad"
    bad.write_text("rgt_wrong\n")
    res = CliRunner().invoke(app, ["--remote", server["url"], "--token-file", str(bad), "list"])
    assert res.exit_code == 6 and res.stderr.startswith("error: ")


def test_both_classes_are_registries():
    """The protocol's operations exist on both, with the same parameters."""
    import inspect

    for op in ("publish", "get", "resolve", "list_models", "list_versions", "audit", "promote",
               "rollback", "archive", "set_alias", "remove_alias", "tag"):  # fmt: skip
        want = inspect.signature(getattr(Registry, op))
        for cls in (ModelRegistry, RemoteRegistry):
            got = inspect.signature(getattr(cls, op))
            extra = [p for p in got.parameters if p not in want.parameters]
            # local only, and named: publish(produced=) for converters and importers, and
            # publish(facts=) for --license/--card/CI provenance, which a registry server
            # does not take yet (the CLI refuses them with --remote: exit 2)
            allowed = ([], ["produced"]) if cls is RemoteRegistry else ([], ["facts", "produced"])
            assert extra in allowed, (cls, op, extra)
            for p, param in want.parameters.items():
                assert got.parameters[p].default == param.default, (cls, op, p)
                assert got.parameters[p].kind == param.kind, (cls, op, p)
