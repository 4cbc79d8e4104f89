"""What every command shares: global options, the error funnel, output sinks.

A command parses its arguments, makes one core call and renders the result;
:func:`command` turns any :class:`RegctlError` into ``error: ...`` on stderr
with the error's exit code, and anything else into exit 1 with a pointer to
``--debug``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from registry_cli.errors import RegctlError
from registry_cli.storage import faults

if TYPE_CHECKING:
    from rich.console import Console

    from registry_cli.core.contract import Registry
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.remote.registry import RemoteRegistry

F = TypeVar("F", bound=Callable[..., Any])

JSON_HELP = "Print one JSON document on stdout instead of tables."


@dataclass
class Globals:
    root: str | None = None
    config: str | None = None
    actor: str | None = None
    debug: bool = False
    quiet: bool = False
    registry_root: Path | None = None  # the root open_registry() resolved, for fault messages
    remote: str | None = None  # --remote, else $REGCTL_URL (remote: in the config: see below)
    token_file: str | None = None
    command: str | None = None  # the command being run (for --remote checks)


STATE = Globals()


def debug_enabled() -> bool:
    return STATE.debug or os.environ.get("REGCTL_DEBUG", "") not in ("", "0")


# Commands that talk to a registry server when --remote (or $REGCTL_URL, or remote: in
# the config) is set (see docs/server.md); any other command is refused then (exit 2).
REMOTE_COMMANDS = frozenset(
    {"publish", "promote", "rollback", "archive", "alias", "tag", "list", "versions", "show",
     "resolve", "audit"}
)  # fmt: skip
REMOTE_AWARE = frozenset({"doctor", "fleet", "rollout"})  # decide for themselves (doctor
# checks the server named; fleet and rollout talk to it: cli/fleet_cmds.py)


def refuse_remote(command: str | None, url: str) -> None:
    """BadInput when ``command`` cannot run against the registry server at ``url``."""
    from registry_cli.errors import BadInput

    if command is not None and command not in REMOTE_COMMANDS | REMOTE_AWARE:
        raise BadInput(
            f"regctl {command} does not work with a remote registry ({url})",
            hint="run it on the registry's machine, without --remote, $REGCTL_URL "
            "and remote: in the config",
        )


def open_registry(root: str | None = None, config: str | None = None) -> Registry:
    """The registry a command works on: a :class:`RemoteRegistry` when a registry server
    is named (``--remote``, ``$REGCTL_URL``, else ``remote:`` in the config), else
    ``--root``/``--config`` (or the given ones) and the lookup order of docs/configuration.md."""
    local = root is not None or STATE.command in REMOTE_AWARE
    if STATE.remote and not local:
        refuse_remote(STATE.command, STATE.remote)
        return open_remote(STATE.remote, None)
    from registry_cli.core.registry import ModelRegistry

    reg = ModelRegistry(root or STATE.root, config=config or STATE.config, actor=STATE.actor)
    STATE.registry_root = reg.root if isinstance(reg.root, Path) else None  # not s3://
    if reg.config.oci_mirrors:  # changes push to the mirrors (docs/oci.md#mirrors)
        from registry_cli.oci import mirrors

        mirrors.attach(reg)
    remote = reg.config.section("remote")
    if remote.get("url") and not local:
        refuse_remote(STATE.command, remote["url"])
        return open_remote(remote["url"], remote)
    return reg


def open_local(root: str | None = None, config: str | None = None) -> ModelRegistry:
    """The registry root of a command that works only on the registry's machine
    (init, verify, gc, dist, token, import, predict): :func:`open_registry`, which
    refuses such a command when a registry server is named."""
    return as_local(open_registry(root, config))


def as_local(reg: Registry) -> ModelRegistry:
    """``reg`` as the root it is, for what only a root can do (its store, its config)."""
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.errors import BadInput

    if not isinstance(reg, ModelRegistry):  # refuse_remote let a new command through
        raise BadInput(f"regctl {STATE.command} does not work with a remote registry ({reg.root})")
    return reg


def open_remote(url: str, section: Any) -> RemoteRegistry:
    """A RemoteRegistry for ``url``; its token from --token-file, else $REGCTL_TOKEN,
    else the config's ``remote.token_file``."""
    from registry_cli.remote import RemoteRegistry

    settings = section if section is not None else {}
    token_file = STATE.token_file
    if token_file is None and not os.environ.get("REGCTL_TOKEN"):
        token_file = settings.get("token_file")
    return RemoteRegistry(
        url,
        token_file=token_file,
        ca_cert=settings.get("ca_cert"),
        timeout=settings.get("timeout_s") or 300.0,
    )


def stdout_console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False, highlight=False, markup=False)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A human remark on stderr (silenced by --quiet)."""
    if not STATE.quiet:
        stderr_console().print(message)


def fail(exc: RegctlError) -> None:
    """Print one error line (and a hint) on stderr."""
    err = sys.stderr
    err.write(f"error: {exc.message}\n")
    if exc.hint:
        err.write(f"hint: {exc.hint}\n")
    err.flush()


def command(func: F) -> F:
    """Wrap a command in the error funnel."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except RegctlError as exc:
            if debug_enabled():
                traceback.print_exc()
            fault = _fault_behind(exc)
            fail(fault or exc)
            raise typer.Exit((fault or exc).exit_code) from None
        except KeyboardInterrupt:
            sys.stderr.write("error: interrupted\n")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(1) from None
        except OSError as exc:
            fault = faults.translate(exc, _operation(), _user_path())
            if fault is None:
                _unexpected(exc)
            if debug_enabled():
                traceback.print_exc()
            fail(fault)
            raise typer.Exit(fault.exit_code) from None
        except Exception as exc:  # the funnel for everything unforeseen
            _unexpected(exc)

    return wrapper  # type: ignore[return-value]


def _fault_behind(exc: RegctlError) -> RegctlError | None:
    """A machine fault a library reported as a remote failure (a full disk under a
    transfer is not the server's fault): the fault, told as such."""
    from registry_cli.errors import RemoteError

    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, RemoteError) and isinstance(cause, OSError):
        return faults.translate(cause, _operation(), _user_path())
    return None


def _unexpected(exc: Exception) -> NoReturn:
    if debug_enabled():
        traceback.print_exc()
    sys.stderr.write(
        f"error: unexpected {type(exc).__name__}: {exc}\n"
        "hint: rerun with --debug (or REGCTL_DEBUG=1) for a traceback\n"
    )
    raise typer.Exit(1) from None


def _operation() -> str:
    """What the user asked for, for fault messages: ``publish team/m``, ``dist rebuild``."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return "run regctl"
    words = ctx.command_path.split()[1:]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if isinstance(param, click.Argument) and isinstance(value, str):
            words.append(value)
            break
    return " ".join(words) or "run regctl"


def _user_path() -> Path | None:
    """The user's path named in fault messages: the pull cache for a command that has
    one (``--cache-dir``), else the registry root the command opened (never an
    internal path under either)."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None and "cache_dir" in ctx.params:
        try:
            from registry_cli.core.config import resolve_root_and_config
            from registry_cli.pull.cache import resolve_cache_root

            section = resolve_root_and_config(STATE.root, STATE.config)[1].section("pull")
            return resolve_cache_root(ctx.params["cache_dir"], section)
        except Exception:
            return None
    return STATE.registry_root


def progress_factory(total_label: str = "") -> Callable[[str, int], Any] | None:
    """A Rich progress bar on stderr, or None when stderr is not a TTY or --quiet."""
    if STATE.quiet or not sys.stderr.isatty():
        return None
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=stderr_console(),
        transient=True,
    )
    bar.start()

    def phase(name: str, total: int) -> Callable[[int], None]:
        task = bar.add_task(f"{total_label}{name}", total=total or None)
        return lambda n: bar.advance(task, n)

    phase.stop = bar.stop  # type: ignore[attr-defined]
    return phase


def stop_progress(progress: Any) -> None:
    if progress is not None:
        progress.stop()
