"""Events (SPEC §12): what happens after a change is committed.

The registry calls :func:`committed` once per committed change, after the
model lock is released, with the change's audit entry.
"""

from __future__ import annotations

from typing import Any

from registry_cli.core.config import Config


def committed(config: Config, entry: dict[str, Any]) -> None:
    """Deliver ``entry`` (an audit line: time, actor, action, model, version, details)."""
    return None
