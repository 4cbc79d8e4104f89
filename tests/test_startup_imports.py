"""The start-up path of `regctl --help` and `regctl resolve`: what it loads, and that the
command tree converted one command at a time (cli/lazy.py) is the same tree.

Structural checks only (which modules a real `python -m registry_cli` imports, read
from ``-X importtime``), never timings: bench/bench_core.py measures those.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
import typer
from click.testing import CliRunner

from registry_cli import ModelRegistry
from registry_cli.cli.lazy import LazyCommands, lazy_command
from registry_cli.cli.main import app
from tests.conftest import regctl_cmd

# Never on the path of --help or resolve: a module, or a package with all of its modules.
NEVER = (
    "torch",
    "mlflow",
    "boto3",
    "botocore",
    "fastapi",
    "starlette",
    "uvicorn",
    "pyftpdlib",
    "numpy",
    "jinja2",
    "httpx",
    "requests",
    "pydantic",
    "http.client",
    "urllib.request",
    "email",
    "ssl",
    "registry_cli.server",
    "registry_cli.webui",
    "registry_cli.remote",
    "registry_cli.pull",
    "registry_cli.predict",
    "registry_cli.importers",
    "registry_cli.formats",
    # taken off the path for issue 20: each loads only when a command needs it
    "yaml",  # a root without registry.yaml reads no YAML
    "hashlib",  # reading commands hash nothing
    "random",  # the commit loop's back-off, only on a conflict
    "getpass",  # the actor's user name, only when $REGCTL_ACTOR is not set
    "registry_cli.storage.s3_client",  # only for an s3:// root
    "registry_cli.storage.s3_store",
    "registry_cli.core.served",  # the served tree dist/, only after a change
    "registry_cli.core.publishing",
    "registry_cli.core.events",
    "registry_cli.core.outbox",  # only when a change has something to deliver
    "registry_cli.core.outbox_send",
    "registry_cli.core.upkeep",
    "registry_cli.core.webhooks",  # parsed from registry.yaml only
    "rich.console",  # plain output: no Rich console
)


def imported_modules(*args: str, cwd) -> set[str]:
    """Every module a real ``python -X importtime -m registry_cli ARGS`` imports."""
    cmd = regctl_cmd(*args)
    cmd.insert(1, "-X")
    cmd.insert(2, "importtime")
    env = dict(os.environ, NO_COLOR="1", REGCTL_ACTOR="tester")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "registry_cli.cli.main" in names, proc.stderr[-2000:]
    return names


def offenders(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == m or n.startswith(m + ".") for m in NEVER))


@pytest.fixture
def published(tmp_path):
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    root = tmp_path / "r"
    ModelRegistry(root).publish("m", [src])
    return root


@pytest.mark.parametrize(
    "argv", [["--help"], ["resolve", "m@candidate"], ["resolve", "m:latest"], ["resolve", "-h"]]
)
def test_help_and_resolve_load_nothing_they_do_not_need(argv, published, tmp_path):
    names = imported_modules("--root", str(published), *argv, cwd=tmp_path)
    assert offenders(names) == []
    assert "registry_cli.core.registry" in names or argv[0] != "resolve" or "-h" in argv


@pytest.fixture
def initialised(tmp_path):
    """A root made by `regctl init` (its commented registry.yaml) with one version."""
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    root = tmp_path / "ri"
    reg = ModelRegistry(root)
    reg.init()
    reg.publish("m", [src])
    assert (root / "registry.yaml").is_file()
    return root


@pytest.mark.parametrize("argv", [["--help"], ["resolve", "m@candidate"]])
def test_the_registry_yaml_init_writes_is_read_without_yaml(argv, initialised, tmp_path):
    names = imported_modules("--root", str(initialised), *argv, cwd=tmp_path)
    assert offenders(names) == []


# Never on the path of a plain `publish FILE` (taken off it for issue 21): signing and
# attestations only with --sign-key/--attestation, the torch.export reader only with a
# .pt2 file, webhooks only when registry.yaml has some
NOT_ON_PUBLISH = (
    "registry_cli.core.signatures",
    "registry_cli.core.webhooks",
    "registry_cli.formats.torch_program",
    "zipfile",
    *NEVER[:9],  # torch ... pyftpdlib, numpy
)


def test_a_plain_publish_loads_no_signing_webhooks_or_archive_code(initialised, tmp_path):
    names = imported_modules(
        "--root", str(initialised), "publish", "n", str(tmp_path / "w.bin"), cwd=tmp_path
    )
    found = sorted(n for n in names if any(n == m or n.startswith(m + ".") for m in NOT_ON_PUBLISH))
    assert found == []
    assert "registry_cli.core.publishing" in names  # the probe sees what publish loads


def test_the_test_sees_what_a_command_that_needs_them_loads(published, tmp_path):
    # the same probe on `verify` (which hashes) finds hashlib: the check can fail
    names = imported_modules("--root", str(published), "verify", cwd=tmp_path)
    assert "hashlib" in offenders(names)


# ----------------------------------------------------------------- the lazy tree
def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            yield from walk(command.get_command(ctx, name), (*path, name))


def test_the_lazy_tree_is_the_tree_typer_builds():
    eager = dict(walk(typer.main.get_command(app)))
    lazy = dict(walk(lazy_command(app)))
    assert list(lazy) == list(eager)  # the same commands, in the same order
    runner = CliRunner()
    for path in eager:
        want = runner.invoke(typer.main.get_command(app), [*path, "--help"], prog_name="regctl")
        got = runner.invoke(lazy_command(app), [*path, "--help"], prog_name="regctl")
        assert (got.exit_code, got.output) == (want.exit_code, want.output), path
        a, b = eager[path], lazy[path]
        assert [p.name for p in a.params] == [p.name for p in b.params], path
        assert (a.help, a.short_help, a.hidden) == (b.help, b.short_help, b.hidden), path


def test_running_one_command_converts_only_that_one(published):
    group = lazy_command(app)
    assert isinstance(group.commands, LazyCommands)
    result = CliRunner().invoke(group, ["--root", str(published), "resolve", "m@candidate"])
    assert result.exit_code == 0, result.output
    assert result.output == "v1\n"
    assert group.commands.converted() == ["resolve"]


def test_help_converts_no_command():
    group = lazy_command(app)
    result = CliRunner().invoke(group, ["--help"], prog_name="regctl")
    assert result.exit_code == 0
    assert "resolve" in result.output and "token" in result.output
    assert group.commands.converted() == []


def test_a_mistyped_command_still_gets_a_suggestion(tmp_path):
    proc = subprocess.run(
        regctl_cmd("resolv", "m"), capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 2
    assert "Did you mean 'resolve'" in proc.stderr


def test_main_runs_through_the_lazy_tree(monkeypatch):
    from registry_cli.cli import main as main_module

    seen: list[click.Command] = []
    real = main_module.lazy_command

    def spy(the_app):
        seen.append(real(the_app))
        return seen[-1]

    monkeypatch.setattr(main_module, "lazy_command", spy)
    assert main_module.main(["--version"]) == 0
    assert seen and isinstance(seen[0].commands, LazyCommands)
    assert sys.modules["registry_cli.cli.main"] is main_module
