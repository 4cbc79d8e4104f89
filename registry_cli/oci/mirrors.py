"""Delivering the OCI mirror pushes a change queued (see docs/oci.md#mirrors).

:mod:`registry_cli.core.mirror_queue` writes one pending entry per push when a
change commits; :func:`deliver` pushes them, oldest first, and removes each one
delivered. A mirror that fails is one ``warning:`` line; its entries stay (with
the error and the number of tries) for ``regctl oci sync`` or the next change, and
the change itself is never failed nor undone. After a first failure of a mirror
in one round its later entries wait for the next round (no pile of time-outs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from registry_cli.core import mirror_queue
from registry_cli.core.mirror_queue import PendingPush
from registry_cli.errors import RegctlError

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def pending(reg: ModelRegistry) -> list[PendingPush]:
    return mirror_queue.pending(reg.store)


def _push(reg: ModelRegistry, item: PendingPush) -> None:
    from registry_cli.oci import auth
    from registry_cli.oci.push import Target, push_version
    from registry_cli.oci.reference import parse_ref

    mirror = next((m for m in reg.config.oci_mirrors if m.url == item.url), None)
    if mirror is None:
        raise RegctlError(f"{item.url} is no longer in oci_mirrors")
    where = parse_ref(item.repository, reference=False)
    creds = auth.resolve(where.registry, mirror.username, mirror.password_env)
    target = Target(
        where, mirror.plain_http, Path(mirror.ca_cert) if mirror.ca_cert else None, creds
    )
    push_version(reg, f"{item.model}:v{item.version}", target, item.tags[1:])


def deliver(
    reg: ModelRegistry, warn: Callable[[str], None] | None = _warn
) -> tuple[list[PendingPush], list[PendingPush]]:
    """Push every pending entry; ``(delivered, still pending)``."""
    done: list[PendingPush] = []
    left: list[PendingPush] = []
    failing: dict[str, str] = {}
    for item in mirror_queue.pending(reg.store):
        if item.url in failing:
            left.append(item)
            continue
        try:
            _push(reg, item)
        except (RegctlError, OSError) as exc:
            item.attempts += 1
            item.error = str(exc)
            failing[item.url] = item.error
            mirror_queue.update(reg.store, item)
            left.append(item)
            if warn is not None:
                warn(
                    f"OCI mirror push of {item.model}:v{item.version} to {item.repository} "
                    f"failed: {item.error}; queued (`regctl oci sync` retries it)"
                )
            continue
        mirror_queue.done(reg.store, item)
        done.append(item)
    return done, left


def sync(
    reg: ModelRegistry, warn: Callable[[str], None] | None = _warn
) -> tuple[list[PendingPush], list[PendingPush]]:
    return deliver(reg, warn)


def attach(reg: ModelRegistry) -> None:
    """Deliver queued pushes right after each change ``reg`` commits."""

    def run(r: ModelRegistry) -> None:
        deliver(r)

    reg.mirror_delivery = run
