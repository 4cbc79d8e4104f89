"""Shared fixtures: an isolated environment for every test, and ways to run the CLI.

``cli`` runs the Typer app in-process (fast); ``regctl_proc`` runs the real
``python -m registry_cli`` in a subprocess (for concurrency, crashes, servers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry_cli import ModelRegistry
from registry_cli.cli.main import app
from tests.mlflow_server import MlflowServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the developer's HOME, caches, config or colours."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("TORCH_HOME", str(home / ".cache" / "torch"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("REGCTL_ACTOR", "tester")
    for var in (
        "REGCTL_ROOT",
        "REGCTL_CONFIG",
        "REGCTL_DEBUG",
        "REGCTL_CACHE_DIR",
        "MLFLOW_TRACKING_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    from registry_cli.cli import common

    monkeypatch.setattr(common, "STATE", common.Globals())
    yield


# --------------------------------------------------------------------------- backends
# The core, lifecycle, audit and verify/gc suites run against both backends: a folder
# and an s3:// root on moto's S3 server (docs/object-storage.md). A test that is about folders by
# nature (permissions, flock, disk faults, local paths) says so with
# @pytest.mark.folder_only("why") and runs on the folder only.
BOTH_BACKENDS = {"test_publish", "test_read", "test_lifecycle", "test_config_audit_verify"}


def pytest_configure(config):
    config.addinivalue_line("markers", "folder_only(reason): a folder-root test by nature")


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in BOTH_BACKENDS and metafunc.definition.get_closest_marker("folder_only") is None:
        metafunc.parametrize("backend", ["folder", "s3"], indirect=True)


@pytest.fixture
def backend(request) -> str:
    return getattr(request, "param", "folder")


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 API server on 127.0.0.1 for the whole session (stopped by its handle)."""
    from tests.s3_helpers import MotoServer

    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_root(request, monkeypatch):
    """A fresh bucket on the session's moto server; the s3:// root inside it."""
    from registry_cli.storage import s3_client
    from tests.s3_helpers import S3Root

    server = request.getfixturevalue("s3_server")
    for var, value in server.env().items():
        monkeypatch.setenv(var, value)
    s3_client.forget_probes()
    return S3Root(server.client(), server.new_bucket(), "registry")


@pytest.fixture
def root(tmp_path, backend, request) -> Path:
    if backend == "s3":
        return request.getfixturevalue("s3_root")
    return tmp_path / "registry"


@pytest.fixture
def reg(root) -> ModelRegistry:
    return ModelRegistry(root)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(root):
    """Run ``regctl --root <root> ARGS`` in-process; returns exit code, stdout, stderr."""
    runner = CliRunner()

    def run(*args: str, root_dir: Path | None = root, input: str | None = None) -> Result:
        argv = (["--root", str(root_dir)] if root_dir is not None else []) + list(args)
        res = runner.invoke(app, argv, input=input)
        if res.exception and not isinstance(res.exception, SystemExit):
            raise res.exception
        return Result(res.exit_code, res.stdout, res.stderr)

    return run


def regctl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "registry_cli", *args]


@pytest.fixture
def regctl_proc(root):
    """Run the real CLI in a subprocess with ``--root <root>``."""

    def run(
        *args: str, check: bool = False, timeout: float = 120, env=None, **kw
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ, **(env or {}))
        proc = subprocess.run(
            regctl_cmd("--root", str(root), *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            **kw,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"regctl {args} failed ({proc.returncode}): {proc.stderr}")
        return proc

    return run


@pytest.fixture
def model_file(tmp_path) -> Path:
    """A small fake weight file."""
    path = tmp_path / "src" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(4096))
    return path


# --------------------------------------------------------------------------- MLflow server
@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 for the whole test session; yields its URI.

    SQLite backend store and a proxied artifact store, both under a session temp
    folder, one worker (``tests/mlflow_server.py``). Start-up takes ~30 s and ~3 GiB,
    so it is started once, on first use, and shared: tests must not depend on what
    other tests logged (create your own runs, experiments and uniquely named
    registered models with ``mlflow.MlflowClient(uri)``). Stopped by its own process
    group at teardown.
    """
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri
