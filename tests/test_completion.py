"""Shell completion through Typer's completion environment variables, in a real process,
against a root with nested model names (see docs/operations.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from tests.conftest import regctl_cmd
from tests.test_meta import HEAVY


@pytest.fixture
def nested(root, model_file):
    """team/a/x, team/a/y, team/b and faq-bot (v1 champion, v2 canary, v3 archived: the
    candidate alias goes with it)."""
    reg = ModelRegistry(root)
    for name in ("team/a/x", "team/a/y", "team/b"):
        reg.publish(name, [model_file])
    for _ in range(3):
        reg.publish("faq-bot", [model_file])
    reg.promote("faq-bot", version="v1")
    reg.set_alias("faq-bot", "canary", "v2")
    reg.archive("faq-bot", "v3")
    return reg


def bash(
    words: list[str], cword: int | None = None, env: dict[str, str] | None = None
) -> list[str]:
    """Ask as bash does: COMP_WORDS joined by IFS (a newline), COMP_CWORD its index."""
    full = dict(os.environ, _REGCTL_COMPLETE="complete_bash", **(env or {}))
    full["COMP_WORDS"] = "\n".join(words)
    full["COMP_CWORD"] = str(len(words) - 1 if cword is None else cword)
    proc = subprocess.run(regctl_cmd(), env=full, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [ln for ln in proc.stdout.splitlines() if ln]  # bash's $(...) drops empty lines


def zsh(line: str) -> str:
    env = dict(os.environ, _REGCTL_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS=line)
    proc = subprocess.run(regctl_cmd(), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def test_commands_and_options(root):
    assert bash(["regctl", "pro"]) == ["promote"]
    assert "rollback" in bash(["regctl", "r"]) and "resolve" in bash(["regctl", "r"])
    assert sorted(bash(["regctl", "alias", ""])) == ["rm", "set"]
    assert "--to" in bash(["regctl", "promote", "m", "--"])


def test_nested_model_names(nested, root):
    r = ["regctl", "--root", str(root)]
    assert bash([*r, "promote", "team/"]) == ["team/a/x", "team/a/y", "team/b"]
    assert bash([*r, "promote", "team/a/"]) == ["team/a/x", "team/a/y"]
    assert bash([*r, "versions", ""]) == ["faq-bot", "team/a/x", "team/a/y", "team/b"]
    assert bash([*r, "audit", "f"]) == ["faq-bot"]


def test_references_versions_and_aliases(nested, root):
    r = ["regctl", "--root", str(root)]
    assert bash([*r, "show", "faq-bot@"]) == ["faq-bot@canary", "faq-bot@champion"]
    assert bash([*r, "show", "faq-bot@ch"]) == ["faq-bot@champion"]
    # bash splits at ':' (COMP_WORDBREAKS) and replaces only what follows it
    assert bash([*r, "show", "faq-bot", ":"]) == ["best", "latest", "v1", "v2"]
    assert bash([*r, "resolve", "faq-bot", ":", "v"]) == ["v1", "v2"]  # v3 is archived
    assert bash([*r, "archive", "faq-bot", ""]) == ["v1", "v2"]
    assert bash([*r, "alias", "rm", "faq-bot", ""]) == ["canary", "champion"]
    assert bash([*r, "promote", "faq-bot", "--version", "@c"]) == ["@canary", "@champion"]
    assert bash([*r, "promote", "faq-bot", "--to", ""]) == ["dev", "release"]
    assert bash([*r, "tag", "team/a/x", ""]) == ["v1"]
    assert '"faq-bot\\\\:v1"' in zsh(f"regctl --root {root} show faq-bot:")  # zsh: whole word


def test_root_from_the_environment_and_the_config(nested, root, tmp_path):
    assert bash(["regctl", "show", "team/b"], env={"REGCTL_ROOT": str(root)}) == ["team/b"]
    cfg = tmp_path / "elsewhere" / "registry.yaml"
    cfg.parent.mkdir()
    cfg.write_text(f"root: {root}\nstages: [dev, staging, prod]\n")
    words = ["regctl", "--config", str(cfg), "promote", "faq-bot", "--to", ""]
    assert bash(words) == ["dev", "prod", "staging"]
    assert bash(["regctl", "--config", str(cfg), "show", "team/a/y"]) == ["team/a/y"]


def test_silent_on_errors(nested, root, tmp_path):
    assert bash(["regctl", "--root", str(tmp_path / "missing"), "show", ""]) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [dev\n")
    assert bash(["regctl", "--config", str(bad), "show", ""]) == []
    (root / "models" / "team" / "b" / "model.yaml").write_text("{not json nor yaml: [")
    assert bash(["regctl", "--root", str(root), "show", "team/b@"]) == []
    # names do not need the states: a damaged one still completes, as a name
    assert bash(["regctl", "--root", str(root), "show", "team/"]) == [
        "team/a/x",
        "team/a/y",
        "team/b",
    ]
    assert bash(["regctl", "--root", str(root), "show", "team/a/x/"]) == []  # a model's folder


def test_completion_imports_nothing_heavy(nested, root):
    code = (
        "import json, os, sys\n"
        "from registry_cli.cli.main import main\n"
        "code = main()\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + json.dumps(heavy) + '\\n')\n"
    )
    env = dict(
        os.environ,
        _REGCTL_COMPLETE="complete_bash",
        COMP_WORDS=f"regctl\n--root\n{root}\nshow\nfaq-bot\n:",
        COMP_CWORD="5",
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    heavy = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert heavy and json.loads(heavy[0][6:]) == [], proc.stderr
    assert "v1" in proc.stdout.split()


def test_show_completion_prints_a_script(tmp_path):
    env = dict(os.environ, SHELL="/bin/bash")
    proc = subprocess.run(
        regctl_cmd("--show-completion"), env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "_REGCTL_COMPLETE=complete_" in proc.stdout and "regctl" in proc.stdout


def test_installed_bash_script_completes_in_a_real_bash(nested, root, tmp_path):
    """--install-completion writes the script; bash sources it and fills COMPREPLY, with
    the words split the way readline splits them (':' is a word of its own)."""
    home = tmp_path / "shell-home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), SHELL="/bin/bash")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    proc = subprocess.run(
        [sys.executable, "-m", "registry_cli", "--install-completion"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    script = home / ".bash_completions" / "regctl.sh"
    assert script.is_file() and f"source '{script}'" in (home / ".bashrc").read_text()
    assert (Path(sys.executable).parent / "regctl").exists()  # the console script bash runs
    r = f"regctl --root {root}"
    shell = (
        f"source {script}\n"
        f"COMP_WORDS=({r} show faq-bot :); COMP_CWORD=5; _regctl_completion regctl\n"
        'echo "A=${COMPREPLY[*]}"\n'
        f"COMP_WORDS=({r} promote team/); COMP_CWORD=4; _regctl_completion regctl\n"
        'echo "B=${COMPREPLY[*]}"\n'
    )
    out = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(ln.split("=", 1) for ln in out.stdout.splitlines())
    assert lines["A"].split() == ["best", "latest", "v1", "v2"]
    assert lines["B"].split() == ["team/a/x", "team/a/y", "team/b"]
