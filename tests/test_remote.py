"""Remote use (see docs/server.md): `regctl --remote URL ...` and `RemoteRegistry` against a real
`regctl serve-registry`, with the same output and exit codes as on the registry's machine."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry_cli import (
    BadInput,
    IntegrityError,
    ModelRegistry,
    NotFound,
    RemoteError,
    RemoteRegistry,
    RuleViolation,
)
from registry_cli.server.launch import ServeRegistryProcess
from tests.conftest import regctl_cmd
from tests.test_server import make_root, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remote")
    root = tmp / "registry"
    tokens = make_root(root)
    token_file = tmp / "token"
    token_file.write_text(tokens["admin"] + "\n")
    proc = ServeRegistryProcess(root, log=tmp / "server.log", env=server_env(tmp)).start()
    yield {"url": proc.url, "root": root, "tokens": tokens, "token_file": token_file, "proc": proc}
    assert proc.stop() == 0


@pytest.fixture
def rcli(cli, remote):
    """`regctl --remote URL --token-file F ARGS` in-process."""

    def run(*args: str, token_file: Path | None = None):
        tf = str(token_file or remote["token_file"])
        return cli("--remote", remote["url"], "--token-file", tf, *args, root_dir=None)

    return run


@pytest.fixture
def lcli(cli, remote):
    """`regctl --root ROOT ARGS` on the server's own root."""

    def run(*args: str):
        return cli(*args, root_dir=remote["root"])

    return run


def _files(tmp_path: Path) -> list[str]:
    (tmp_path / "run" / "weights").mkdir(parents=True, exist_ok=True)
    (tmp_path / "run" / "weights" / "best.pt").write_bytes(os.urandom(5000))
    (tmp_path / "run" / "config.yaml").write_text("lr: 0.1\n")
    (tmp_path / "extra.onnx").write_bytes(os.urandom(100))
    return [str(tmp_path / "run"), str(tmp_path / "extra.onnx")]


def test_remote_cli_gives_the_same_output_as_local(rcli, lcli, tmp_path):
    name = "same/out"
    pub = rcli(
        "publish", name, *_files(tmp_path), "--metric", "map=0.71", "--tag", "ds=a", "--json"
    )
    assert pub.exit_code == 0, pub.stderr
    doc = json.loads(pub.stdout)
    assert doc["version"] == "v1" and doc["created_by"] == "tok-admin"
    assert {f["path"] for f in doc["files"]} == {
        "payload/run/weights/best.pt",
        "payload/run/config.yaml",
        "payload/extra.onnx",
    }
    assert rcli("promote", name, "--json").exit_code == 0
    rcli("publish", name, *_files(tmp_path), "--metric", "map=0.8")
    for args in (
        ("list",),
        ("list", "--json"),
        ("versions", name),
        ("versions", name, "--json"),
        ("versions", name, "--stage", "release", "--json"),
        ("show", f"{name}@champion"),
        ("show", f"{name}:v2", "--json"),
        ("show", f"{name}:best", "--metric", "map", "--json"),
        ("resolve", f"{name}@champion"),
        ("resolve", f"{name}:latest", "--stage", "dev"),
        ("resolve", name, "--path"),
        ("resolve", name, "--json"),
        ("audit", name, "--json"),
        ("audit", name, "--limit", "1"),
    ):
        here, there = lcli(*args), rcli(*args)
        assert (there.exit_code, there.stdout) == (here.exit_code, here.stdout), args


def test_remote_lifecycle_commands(rcli, lcli, tmp_path):
    name = "life/cycle"
    for _ in range(3):
        assert rcli("publish", name, *_files(tmp_path)).exit_code == 0
    promoted = rcli("promote", name, "--version", "v1")
    assert promoted.exit_code == 0 and promoted.stdout.startswith("promote life/cycle:v1")
    assert rcli("promote", name, "--json").exit_code == 0  # @candidate = v3
    noop = rcli("promote", name, "--version", "v3")
    assert noop.exit_code == 0 and "nothing changed" in noop.stdout
    rolled = json.loads(rcli("rollback", name, "--json").stdout)
    assert rolled["action"] == "rollback" and rolled["version"] == "v1"
    assert rcli("alias", "set", name, "canary", "v2").exit_code == 0
    assert rcli("tag", name, "v2", "owner=qa").exit_code == 0
    assert rcli("alias", "rm", name, "canary").exit_code == 0
    assert rcli("archive", name, "v2", "--reason", "bad").exit_code == 0
    shown = json.loads(lcli("show", f"{name}:v2", "--json").stdout)
    assert shown["status"] == "archived" and shown["tags"] == {"owner": "qa"}
    actors = {e["actor"] for e in json.loads(lcli("audit", name, "--json").stdout)}
    assert actors == {"tok-admin"}


def test_remote_exit_codes(rcli, remote, tmp_path, cli):
    name = "exit/codes"
    rcli("publish", name, *_files(tmp_path))
    assert rcli("show", "nope/model").exit_code == 3
    assert rcli("show", f"{name}:v9").exit_code == 3
    assert rcli("rollback", name).exit_code == 4
    assert rcli("alias", "set", name, "champion", "v1").exit_code == 4
    res = rcli("show", "bad name!")
    assert res.exit_code == 2 and res.stderr.startswith("error: ")
    assert rcli("promote", name, "--force").exit_code == 2  # --force without --reason
    assert rcli("publish", name, str(tmp_path / "missing.pt")).exit_code == 3
    arch = rcli("publish", name, *_files(tmp_path), "--convert", "torch-standard", "--arch", "m:f")
    assert arch.exit_code == 2 and "refused over HTTP" in arch.stderr
    # authentication refused, server unreachable: 6
    bad = tmp_path / "bad-token"
    bad.write_text("rgt_not-a-token\n")
    refused = rcli("list", token_file=bad)
    assert refused.exit_code == 6 and "refused" in refused.stderr
    read_only = tmp_path / "read-token"
    read_only.write_text(remote["tokens"]["read"])
    assert rcli("promote", name, token_file=read_only).exit_code == 6
    gone = cli("--remote", "http://127.0.0.1:9", "--token-file", str(bad), "list", root_dir=None)
    assert gone.exit_code == 6 and "cannot reach" in gone.stderr
    # commands that only work on the registry's machine
    for args in (("verify",), ("gc",), ("token", "list"), ("dist", "rebuild"), ("init",)):
        res = rcli(*args)
        assert res.exit_code == 2 and "does not work with a remote registry" in res.stderr, args


def test_regctl_url_and_regctl_token_from_the_environment(remote, tmp_path):
    env = dict(os.environ, REGCTL_URL=remote["url"], REGCTL_TOKEN=remote["tokens"]["read"])
    res = subprocess.run(regctl_cmd("list", "--json"), capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert isinstance(json.loads(res.stdout), list)
    res = subprocess.run(regctl_cmd("gc"), capture_output=True, text=True, env=env)
    assert res.returncode == 2
    config = tmp_path / "registry.yaml"
    config.write_text(f"remote: {{url: {remote['url']}, token_file: {remote['token_file']}}}\n")
    env = dict(os.environ, REGCTL_CONFIG=str(config))
    env.pop("REGCTL_TOKEN", None)
    res = subprocess.run(regctl_cmd("list", "--json"), capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr


def test_remote_registry_has_the_methods_and_exceptions_of_model_registry(remote, tmp_path):
    reg = RemoteRegistry(remote["url"], token=remote["tokens"]["admin"])
    local = ModelRegistry(remote["root"])
    info = reg.publish("py/api", _files(tmp_path), metrics={"acc": 0.9}, description="d")
    assert info.vname == "v1" and info.metrics == {"acc": 0.9}
    assert reg.get("py/api@candidate").to_json() == local.get("py/api@candidate").to_json()
    assert reg.resolve("py/api").vname == "v1"
    assert [m.to_json() for m in reg.list_models()] == [m.to_json() for m in local.list_models()]
    assert [v.to_summary_json() for v in reg.list_versions("py/api")] == [
        v.to_summary_json() for v in local.list_versions("py/api")
    ]
    assert reg.promote("py/api").changed["aliases"]["champion"] == [None, "v1"]
    assert reg.set_alias("py/api", "canary", "v1").action == "alias-set"
    assert reg.tag("py/api", 1, {"k": "v"}).action == "tag"
    assert reg.remove_alias("py/api", "canary").action == "alias-rm"
    assert reg.audit("py/api", 2).entries == local.audit("py/api", 2).entries
    with pytest.raises(NotFound):
        reg.get("py/none")
    with pytest.raises(RuleViolation):
        reg.rollback("py/api")
    with pytest.raises(RuleViolation):
        reg.archive("py/api", "v1")  # the champion
    with pytest.raises(BadInput):
        reg.get("bad name!")
    with pytest.raises(RemoteError):
        RemoteRegistry(remote["url"], token="rgt_wrong").list_models()
    with pytest.raises(RemoteError):
        RemoteRegistry("http://127.0.0.1:9", token="x").list_models()
    assert isinstance(RemoteError("x"), ConnectionError)  # builtin bases, as ModelRegistry's


def test_a_damaged_upload_is_an_integrity_error(remote, tmp_path, monkeypatch):
    import hashlib
    import types

    import registry_cli.remote.upload as remote_module

    real_sha256 = hashlib.sha256

    class WrongHash:
        def __init__(self) -> None:
            self.real = real_sha256()

        def update(self, data: bytes) -> None:
            self.real.update(data + b"!")  # what a corrupted transfer would hash to

        def hexdigest(self) -> str:
            return self.real.hexdigest()

    monkeypatch.setattr(remote_module, "hashlib", types.SimpleNamespace(sha256=WrongHash))
    reg = RemoteRegistry(remote["url"], token=remote["tokens"]["admin"])
    with pytest.raises(IntegrityError):
        reg.publish("py/damaged", _files(tmp_path))
    assert not (remote["root"] / "models/py/damaged/v1").exists()


def test_concurrent_remote_and_local_publishers_get_distinct_versions(remote, tmp_path):
    name = "busy/model"
    files = _files(tmp_path)
    env = dict(os.environ, REGCTL_TOKEN=remote["tokens"]["publish"])

    def remote_publish(i: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            regctl_cmd("--remote", remote["url"], "publish", name, *files, "--json"),
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip

    def local_publish() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            regctl_cmd("--root", str(remote["root"]), "publish", name, *files, "--json"),
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    with ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(remote_publish, i) for i in range(8)] + [pool.submit(local_publish)]
        results = [f.result() for f in futures]
    for res in results:
        assert res.returncode == 0, res.stderr
    versions = sorted(int(json.loads(r.stdout)["version"][1:]) for r in results)
    assert versions == list(range(1, 10))
    local = ModelRegistry(remote["root"])
    assert local.verify().ok
    assert local.model_state(name).aliases["candidate"] == 9
    assert [v.vname for v in local.list_versions(name)] == [f"v{i}" for i in range(1, 10)]


def test_api_and_cli_promotes_interleave_without_a_lost_update(remote, tmp_path):
    name = "race/promote"
    local = ModelRegistry(remote["root"])
    for _ in range(8):
        local.publish(name, [_files(tmp_path)[1]])
    api = RemoteRegistry(remote["url"], token=remote["tokens"]["promote"])
    errors: list[BaseException] = []

    def via_api() -> None:
        try:
            for v in (1, 3, 5, 7):
                api.promote(name, version=v)
                api.set_alias(name, f"api{v}", v)
        except BaseException as exc:
            errors.append(exc)

    def via_cli() -> None:
        for v in (2, 4, 6, 8):
            for args in (
                ("promote", name, "--version", f"v{v}"),
                ("alias", "set", name, f"cli{v}", f"v{v}"),
            ):
                res = subprocess.run(
                    regctl_cmd("--root", str(remote["root"]), *args),
                    capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                if res.returncode:
                    errors.append(AssertionError(res.stderr))

    threads = [threading.Thread(target=via_api), threading.Thread(target=via_cli)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    state = local.model_state(name)
    assert {f"api{v}" for v in (1, 3, 5, 7)} | {f"cli{v}" for v in (2, 4, 6, 8)} <= set(
        state.aliases
    )
    promotes = [e for e in local.audit(name).entries if e["action"] == "promote"]
    assert len(promotes) == 8
    # every outgoing champion was pushed: seven rollbacks walk back, the eighth is refused
    for _ in range(7):
        api.rollback(name)
    with pytest.raises(RuleViolation):
        api.rollback(name)
