"""docs/cli.md is generated from the Typer app and must not go stale (as sqlite-utils
checks its cog-generated reference)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import typer

from registry_cli.cli.main import app
from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "gen_cli_docs.py"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_up_to_date():
    gen = _generator()
    current = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == gen.render(), (
        "docs/cli.md is stale: regenerate it with `make docs` "
        "(python scripts/gen_cli_docs.py) and commit it"
    )


def test_reference_names_every_command_argument_and_option():
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")

    def walk(cmd, path):
        assert f"`{path}" in text, f"{path} missing from docs/cli.md"
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if param.param_type_name == "option":
                    assert f"`{opt}" in text or f", {opt}" in text, f"{path} {opt} missing"
            if param.param_type_name == "argument" and getattr(param, "help", None):
                assert " ".join(param.help.split()) in text, f"{path} {param.name} help missing"
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "regctl")


def test_output_does_not_depend_on_the_terminal(tmp_path):
    """Deterministic: a narrow terminal and another working directory change nothing."""
    env = {"COLUMNS": "30", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('g', {str(SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "sys.stdout.write(m.render())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _generator().render()


def test_check_mode_names_the_command_to_regenerate(tmp_path, monkeypatch, capsys):
    gen = _generator()
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n")
    monkeypatch.setattr(gen, "TARGET", stale)
    assert gen.main(["--check"]) == 1
    assert "make docs" in capsys.readouterr().err
    assert gen.main([]) == 0 and stale.read_text() == gen.render()
    assert gen.main(["--check"]) == 0
