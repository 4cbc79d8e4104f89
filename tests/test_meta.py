"""Meta-tests: help everywhere, every command in the README, a light start-up path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from registry_cli.cli.main import app
from tests.conftest import REPO

HEAVY = (
    "torch",
    "mlflow",
    "pyftpdlib",
    "OpenSSL",
    "fastapi",
    "uvicorn",
    "httpx",
    "numpy",
    "starlette",
    "pydantic_core",
    "requests",
)


def all_commands():
    """(full name, click command) for every leaf command of the app."""
    root = typer.main.get_command(app)
    out = []

    def walk(group, prefix):
        for name, cmd in sorted(group.commands.items()):
            full = f"{prefix} {name}".strip()
            if hasattr(cmd, "commands"):
                walk(cmd, full)
            else:
                out.append((full, cmd))

    walk(root, "")
    return out


def test_every_command_and_parameter_has_help():
    commands = all_commands()
    assert len(commands) >= 14
    for name, cmd in commands:
        assert cmd.help, f"regctl {name} has no help"
        for param in cmd.params:
            if param.name in ("help",):
                continue
            assert getattr(param, "help", None), f"regctl {name}: {param.name} has no help"


def test_every_command_appears_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for name, _cmd in all_commands():
        assert f"regctl {name}" in readme, f"README does not mention 'regctl {name}'"


@pytest.mark.parametrize(
    "argv", [["--help"], ["resolve", "m@candidate"], ["list", "--json"], ["promote", "--help"]]
)
def test_start_up_path_imports_nothing_heavy(argv, tmp_path):
    code = (
        "import sys, json\n"
        "from registry_cli.cli.main import main\n"
        f"main({['--root', str(tmp_path / 'r')] + argv!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + json.dumps(heavy) + '\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line, proc.stderr
    assert json.loads(line[0][6:]) == []


def test_registry_yaml_example_is_a_valid_config_for_every_section(monkeypatch):
    """The documented example is loaded by the same validators the commands use."""
    from registry_cli.core.config import load_config_file
    from registry_cli.formats.mlflow_source import resolve_tracking_uri
    from registry_cli.predict.settings import resolve_settings
    from registry_cli.settings import FTP, PULL

    cfg = load_config_file(REPO / "registry.yaml.example")
    assert cfg.stages == ("dev", "release")
    assert "release" in cfg.gates and cfg.best_metric == "accuracy"
    assert FTP.resolve({}, cfg.section("ftp"), env={})["port"] == 2121
    assert PULL.resolve({}, cfg.section("pull"), env={})["stage"] == "release"
    settings = resolve_settings({}, cfg.section("serve"), env={})
    assert settings.alias == "champion" and settings.port == 8000
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, cfg).startswith("http://127.0.0.1")
