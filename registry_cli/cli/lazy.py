"""The Click command tree of the Typer app, converted one command at a time.

Typer turns every command into a Click command before it runs any: it reads each
function's signature, evaluates its annotations and builds its parameters. For
``regctl resolve`` that is some 25 commands and 140 parameters converted to run
one, about as long as importing Typer itself. :func:`lazy_command` builds the
group with its own options only; a command is converted when it is looked up
(to run it, or for its own ``--help``), and the group's ``--help`` and the
shell's command-name completion read only each command's name and help text.

``typer.main.get_command(app)`` still converts everything at once (the docs
generator and the tests walk that tree); both trees hold the same commands.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import click
import typer
import typer.main
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name: known up front, each converted on first access."""

    def __init__(self) -> None:
        self._built: dict[str, click.Command] = {}
        self._pending: dict[str, tuple[Callable[[], click.Command], Callable[[], click.Command]]]
        self._pending = {}
        self._order: list[str] = []

    def add(
        self, name: str, build: Callable[[], click.Command], summary: Callable[[], click.Command]
    ) -> None:
        """Register ``name``: ``build`` makes the command, ``summary`` a stand-in with
        only its name, help texts and visibility (what a listing shows)."""
        if name not in self._order:
            self._order.append(name)
        self._built.pop(name, None)
        self._pending[name] = (build, summary)

    def converted(self) -> list[str]:
        """The names converted so far, in the order of definition."""
        return [name for name in self._order if name in self._built]

    def summary(self, name: str) -> click.Command | None:
        if name in self._built:
            return self._built[name]
        if name in self._pending:
            return self._pending[name][1]()
        return None

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            build, _summary = self._pending[name]  # KeyError for an unknown name
            self._built[name] = build()
            del self._pending[name]
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        if name not in self._order:
            self._order.append(name)
        self._pending.pop(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self._built and name not in self._pending:
            raise KeyError(name)
        self._built.pop(name, None)
        self._pending.pop(name, None)
        self._order.remove(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._pending


class LazyGroup(TyperGroup):
    """A :class:`TyperGroup` whose listings (``--help``, completion of command names)
    use each command's summary, so they convert none. With ordinary ``commands``
    (what ``typer.main.get_command`` gives it) it is a plain ``TyperGroup``."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order of definition, like TyperGroup's

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self._listing and isinstance(self.commands, LazyCommands):
            return self.commands.summary(cmd_name)
        return super().get_command(ctx, cmd_name)

    @contextlib.contextmanager
    def _summaries(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with self._summaries():
            super().format_commands(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        with self._summaries():
            return super().shell_complete(ctx, incomplete)


def lazy_command(app: typer.Typer) -> click.Command:
    """The Click group of ``app`` (made with ``cls=LazyGroup``), converting each command
    and sub-app when it is first looked up."""
    shell = copy.copy(app)  # the callback, its options and the completion options only
    shell.registered_commands = []
    shell.registered_groups = []
    group = typer.main.get_command(shell)
    if not isinstance(group, LazyGroup):
        raise TypeError("lazy_command needs a Typer app made with cls=LazyGroup")
    commands = LazyCommands()
    for info in app.registered_commands:
        commands.add(
            _command_name(info),
            functools.partial(_build_command, app, info),
            functools.partial(_command_summary, info),
        )
    for sub in app.registered_groups:
        solved = typer.main.solve_typer_info_defaults(sub)
        if not solved.name:  # its commands would be merged into this group: convert now
            return typer.main.get_command(app)
        commands.add(
            solved.name,
            functools.partial(_build_group, app, sub),
            functools.partial(_group_summary, solved),
        )
    group.commands = commands
    return group


def _build_command(app: typer.Typer, info: CommandInfo) -> click.Command:
    return typer.main.get_command_from_info(
        info,
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
    )


def _build_group(app: typer.Typer, sub: TyperInfo) -> click.Command:
    return typer.main.get_group_from_info(
        sub,
        pretty_exceptions_short=app.pretty_exceptions_short,
        suggest_commands=app.suggest_commands,
        rich_markup_mode=app.rich_markup_mode,
    )


def _command_name(info: CommandInfo) -> str:
    assert info.callback is not None
    return info.name or typer.main.get_command_name(info.callback.__name__)


def _command_summary(info: CommandInfo) -> click.Command:
    """What ``typer.main.get_command_from_info`` would give, without the parameters."""
    text = inspect.getdoc(info.callback) if info.help is None else inspect.cleandoc(info.help)
    return click.Command(
        _command_name(info),
        help=text,
        short_help=info.short_help,
        hidden=info.hidden,
        deprecated=info.deprecated,
    )


def _group_summary(solved: TyperInfo) -> click.Command:
    return click.Command(
        solved.name,
        help=solved.help,
        short_help=solved.short_help,
        hidden=solved.hidden,
        deprecated=solved.deprecated,
    )
