"""Shell completion callbacks: model names, references, versions, aliases, stages.

Typer calls these (``autocompletion=`` on an argument or option) while the
shell asks for completions (``_REGCTL_COMPLETE=complete_bash`` and friends).
They read the root the way the command would (``--root``/``--config`` given
earlier on the command line, else ``$REGCTL_ROOT``/``$REGCTL_CONFIG`` and the
config lookup), import nothing heavy, and never fail: any error means no
suggestions.

Bash splits words at ``:`` (``COMP_WORDBREAKS``), so ``faq-bot:<TAB>`` would
reach us as three words; :func:`complete` glues them back before Typer parses
the line and prints only the part after the last ``:`` of each answer, which
is the part bash replaces (what bash-completion's ``__ltrim_colon_completions``
does).
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from registry_cli.core.config import Config

COMPLETE_VAR = "_REGCTL_COMPLETE"


def complete(run: Callable[[], int], environ: Any = os.environ) -> int:
    """Answer the shell's completion request with ``run`` (the CLI), fixing bash's ``:``."""
    cut = prepare_bash(environ)
    if not cut:
        return run()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run()
    lines = out.getvalue().splitlines()
    sys.stdout.write("".join(ln[len(cut) :] + "\n" for ln in lines if ln.startswith(cut)))
    return code


def prepare_bash(environ: Any = os.environ) -> str:
    """Glue bash's ``NAME`` ``:`` ``vN`` words back into ``NAME:vN`` (in ``environ``).

    Returns what bash will not replace of the current word (``NAME:``), else "".
    """
    if environ.get(COMPLETE_VAR) != "complete_bash" or ":" not in environ.get("COMP_WORDS", ""):
        return ""
    from click.shell_completion import split_arg_string

    try:
        tokens = split_arg_string(environ["COMP_WORDS"])
        cword = int(environ["COMP_CWORD"])
    except (KeyError, ValueError):
        return ""
    merged: list[str] = []
    owner: list[int] = []
    for i, tok in enumerate(tokens):
        if i > 1 and merged and (tok == ":" or tokens[i - 1] == ":"):
            merged[-1] += tok
        else:
            merged.append(tok)
        owner.append(len(merged) - 1)
    new_cword = owner[cword] if cword < len(tokens) else len(merged)
    environ["COMP_WORDS"] = " ".join(shlex.quote(w) for w in merged)
    environ["COMP_CWORD"] = str(new_cword)
    current = merged[new_cword] if new_cword < len(merged) else ""
    return current.rsplit(":", 1)[0] + ":" if ":" in current else ""


def _finish(values: Iterable[str], incomplete: str) -> list[str]:
    return sorted({v for v in values if v.startswith(incomplete)})


def _root(ctx: click.Context) -> tuple[Path, Config]:
    """The folder root and config the command would use (``--root``/``--config`` typed
    earlier, the environment, the config lookup of docs/configuration.md). Not the whole
    :class:`ModelRegistry`: its import and a full listing would double the time the
    shell waits. A registry server or an object-store root completes nothing."""
    from registry_cli.core.config import resolve_root_and_config

    params = ctx.find_root().params
    if params.get("remote") or os.environ.get("REGCTL_URL"):
        raise LookupError("a registry server: no network while completing")
    root, cfg = resolve_root_and_config(params.get("root"), params.get("config"))
    if not isinstance(root, Path) or cfg.section("remote").get("url"):
        raise LookupError("not a folder root")
    return root, cfg


def _names(ctx: click.Context, incomplete: str) -> list[str]:
    """Model names starting with ``incomplete``: a folder holding ``model.yaml`` is a
    model (names nest), as the registry lists them; only the folders the typed prefix
    can lead to are visited."""
    from registry_cli.storage.layout import Layout

    models = Layout(_root(ctx)[0]).models
    *folders, last = incomplete.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in folders):
        return []
    out: list[str] = []

    def walk(directory: Path, prefix: str, start: str) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        if any(e.name == "model.yaml" for e in entries):
            out.append(prefix)
            return
        for e in entries:
            if e.name.startswith(start) and not e.name.startswith("."):
                if e.is_dir(follow_symlinks=False):
                    walk(Path(e.path), f"{prefix}/{e.name}" if prefix else e.name, "")

    base = models.joinpath(*folders)
    if folders and (base / "model.yaml").is_file():
        return []  # a model's own folder holds versions, not models
    walk(base, "/".join(folders), last)
    return [n for n in out if n]


def _line_words() -> list[str]:
    """The words the shell sent (Typer's completion environment), up to the cursor."""
    from click.shell_completion import split_arg_string

    if "COMP_WORDS" in os.environ:  # bash
        words = split_arg_string(os.environ["COMP_WORDS"])
        return words[: int(os.environ.get("COMP_CWORD", len(words)))]
    return split_arg_string(os.environ.get("_TYPER_COMPLETE_ARGS", ""))  # zsh, fish


def _name_param(ctx: click.Context) -> str | None:
    """The NAME given earlier on the line. While an option's value is being completed
    click has not assigned the arguments, so fall back to the first word after the
    command's own name."""
    name = ctx.params.get("name")
    if isinstance(name, str) and name:
        return name
    words = _line_words()
    if ctx.info_name in words:
        after = words[len(words) - words[::-1].index(ctx.info_name) :]
        for word in after:
            if not word.startswith("-"):
                return word
    return None


def _versions_and_aliases(
    ctx: click.Context, name: str
) -> tuple[list[str], list[str], tuple[str, ...]]:
    """(vN of every active version, alias names, stages) of one model."""
    from registry_cli.core.state import ModelState, load_state_text
    from registry_cli.storage.layout import Layout

    root, cfg = _root(ctx)
    state = ModelState.from_doc(load_state_text(Layout(root).model_state(name).read_bytes()))
    active = [f"v{n}" for n in state.active()]
    return active, list(state.all_aliases()), tuple(cfg.stages)


def model_names(ctx: click.Context, incomplete: str) -> list[str]:
    """NAME: every model of the root (nested names included)."""
    try:
        return _finish(_names(ctx, incomplete), incomplete)
    except Exception:
        return []


def references(ctx: click.Context, incomplete: str) -> list[str]:
    """REF: NAME, NAME:vN, NAME:latest, NAME:best, NAME@alias."""
    try:
        for sep in ("@", ":"):
            if sep in incomplete:
                name = incomplete.split(sep, 1)[0]
                versions, aliases, _ = _versions_and_aliases(ctx, name)
                if sep == "@":
                    return _finish((f"{name}@{a}" for a in aliases), incomplete)
                keys = [*versions, "latest", "best"]
                return _finish((f"{name}:{k}" for k in keys), incomplete)
        return _finish(_names(ctx, incomplete), incomplete)
    except Exception:
        return []


def versions(ctx: click.Context, incomplete: str) -> list[str]:
    """VERSION of the NAME given earlier on the line: vN of its active versions."""
    try:
        name = _name_param(ctx)
        if name is None:
            return []
        return _finish(_versions_and_aliases(ctx, name)[0], incomplete)
    except Exception:
        return []


def versions_or_aliases(ctx: click.Context, incomplete: str) -> list[str]:
    """``promote --version``: vN or @alias of the NAME given earlier."""
    try:
        name = _name_param(ctx)
        if name is None:
            return []
        found, aliases, _ = _versions_and_aliases(ctx, name)
        return _finish([*found, *(f"@{a}" for a in aliases)], incomplete)
    except Exception:
        return []


def aliases(ctx: click.Context, incomplete: str) -> list[str]:
    """ALIAS of the NAME given earlier on the line."""
    try:
        name = _name_param(ctx)
        if name is None:
            return []
        return _finish(_versions_and_aliases(ctx, name)[1], incomplete)
    except Exception:
        return []


def stages(ctx: click.Context, incomplete: str) -> list[str]:
    """A stage name from the config (default dev, release)."""
    try:
        return _finish(_root(ctx)[1].stages, incomplete)
    except Exception:
        return []
