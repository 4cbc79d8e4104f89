"""Generate docs/cli.md, the command reference, from the Typer app.

    python scripts/gen_cli_docs.py           # rewrite docs/cli.md (also: make docs)
    python scripts/gen_cli_docs.py --check   # exit 1 when docs/cli.md is stale

Every command and sub-command with its help, usage, arguments and options
(help, type, default). The output depends only on the app: no terminal width,
no environment, commands and groups in name order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click
import typer

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "docs" / "cli.md"
REGENERATE = "make docs"  # or: python scripts/gen_cli_docs.py

HEADER = f"""\
# regctl command reference

<!-- Generated from the Typer app by scripts/gen_cli_docs.py: do not edit by hand.
     Regenerate with `{REGENERATE}`; tests/test_cli_reference.py fails when this is stale. -->

Global options come before the command (`regctl --root R publish ...`), command
options after it. Exit codes: 0 ok, 1 unexpected error, 2 bad usage or input
(and faults of the machine: no space, read-only, permission denied), 3 not
found, 4 refused by a rule, 5 integrity failure, 6 remote failure.
"""


def _clean(text: str | None) -> str:
    """Help text on one line (Typer keeps docstrings' line breaks)."""
    return " ".join((text or "").split())


def _metavar(param: click.Parameter, ctx: click.Context) -> str:
    if isinstance(param, click.Option) and param.is_flag:
        return ""
    return param.make_metavar(ctx)


def _default(param: click.Parameter) -> str:
    if not isinstance(param, click.Option) or param.is_flag or param.multiple:
        return ""
    default = param.default
    if default is None or callable(default) or default == "":
        return ""
    return f" (default: `{default}`)"


def _param_lines(cmd: click.Command, ctx: click.Context) -> list[str]:
    args, opts = [], []
    for param in cmd.params:
        if isinstance(param, click.Argument):
            name = param.make_metavar(ctx)
            need = "required" if param.required else "optional"
            args.append(f"- `{name}` ({need}): {_clean(getattr(param, 'help', None))}")
        elif isinstance(param, click.Option) and not param.hidden:
            flags = ", ".join(param.opts)
            if param.secondary_opts:
                flags += " / " + ", ".join(param.secondary_opts)
            meta = _metavar(param, ctx)
            spec = f"{flags} {meta}".strip()
            said = "repeatable" in (param.help or "").lower()
            more = " Repeatable." if param.multiple and not said else ""
            opts.append(f"- `{spec}`: {_clean(param.help)}{more}{_default(param)}")
    out = []
    if args:
        out += ["", "Arguments:", "", *args]
    if opts:
        out += ["", "Options:", "", *opts]
    return out


def _section(cmd: click.Command, path: list[str], parent: click.Context | None) -> list[str]:
    name = " ".join(path)
    ctx = click.Context(cmd, info_name=path[-1], parent=parent)
    title = f"## `{name}`" if len(path) > 1 else "## Global options"
    lines = ["", title, "", _clean(cmd.help)]
    usage = " ".join([name, *cmd.collect_usage_pieces(ctx)])
    lines += ["", f"Usage: `{usage}`"]
    lines += _param_lines(cmd, ctx)
    if isinstance(cmd, click.Group):
        subs = sorted(cmd.commands)
        if len(path) > 1:
            lines += ["", "Commands: " + ", ".join(f"`{name} {s}`" for s in subs)]
        for sub in subs:
            lines += _section(cmd.commands[sub], [*path, sub], ctx)
    return lines


def render() -> str:
    """The whole reference, as docs/cli.md holds it."""
    from registry_cli.cli.main import app

    root = typer.main.get_command(app)
    commands = _commands(root, "regctl")
    contents = ["", "Commands:", ""] + [f"- `{c}`" for c in commands]
    body = _section(root, ["regctl"], None)
    return HEADER + "\n".join(contents + body) + "\n"


def _commands(group: click.Command, prefix: str) -> list[str]:
    out: list[str] = []
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        full = f"{prefix} {name}"
        out += _commands(cmd, full) if isinstance(cmd, click.Group) else [full]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is stale")
    args = parser.parse_args(argv)
    text = render()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if args.check:
        if current != text:
            sys.stderr.write(f"{TARGET} is stale; regenerate it with: {REGENERATE}\n")
            return 1
        return 0
    if current != text:
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET}")
    else:
        print(f"{TARGET} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
