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
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from registry_cli.errors import RegctlError

if TYPE_CHECKING:
    from rich.console import Console

    from registry_cli.core.registry import ModelRegistry

F = TypeVar("F", bound=Callable[..., Any])

JSON_HELP = "Print one JSON document on stdout instead of tables."


@dataclass
class Globals:
    root: str | None = None
    config: str | None = None
    actor: str | None = None
    debug: bool = False
    quiet: bool = False


STATE = Globals()


def debug_enabled() -> bool:
    return STATE.debug or os.environ.get("REGCTL_DEBUG", "") not in ("", "0")


def open_registry() -> ModelRegistry:
    from registry_cli.core.registry import ModelRegistry

    return ModelRegistry(STATE.root, config=STATE.config, actor=STATE.actor)


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
            fail(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            sys.stderr.write("error: interrupted\n")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(1) from None
        except Exception as exc:  # the funnel for everything unforeseen
            if debug_enabled():
                traceback.print_exc()
            sys.stderr.write(
                f"error: unexpected {type(exc).__name__}: {exc}\n"
                "hint: rerun with --debug (or REGCTL_DEBUG=1) for a traceback\n"
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


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
