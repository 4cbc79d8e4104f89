"""regctl: a model registry on a plain filesystem.

from registry_cli import ModelRegistry
reg = ModelRegistry("./registry")
v = reg.publish("faq-bot", ["model.pt"], metrics={"accuracy": 0.93})
reg.promote("faq-bot")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry_cli.errors import (
    BadInput,
    ConfigError,
    GateFailed,
    IntegrityError,
    NotFound,
    RegctlError,
    RemoteError,
    RuleViolation,
)
from registry_cli.version import __version__

__all__ = [
    "BadInput",
    "ConfigError",
    "GateFailed",
    "IntegrityError",
    "ModelRegistry",
    "NotFound",
    "RegctlError",
    "Registry",
    "RemoteError",
    "RemoteRegistry",
    "RuleViolation",
    "__version__",
]

if TYPE_CHECKING:
    from registry_cli.core.contract import Registry
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.remote import RemoteRegistry


def __getattr__(name: str) -> Any:
    # Keep `import registry_cli` cheap: the core loads on first use.
    if name == "ModelRegistry":
        from registry_cli.core.registry import ModelRegistry

        return ModelRegistry
    if name == "Registry":  # the protocol both registries implement
        from registry_cli.core.contract import Registry

        return Registry
    if name == "RemoteRegistry":
        from registry_cli.remote import RemoteRegistry

        return RemoteRegistry
    raise AttributeError(name)
