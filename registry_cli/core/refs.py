"""References: ``NAME``, ``NAME:vN``, ``NAME:latest``, ``NAME:best``, ``NAME@alias``."""

from __future__ import annotations

from dataclasses import dataclass

from registry_cli.core.names import parse_version, validate_alias, validate_model_name
from registry_cli.errors import BadInput


@dataclass(frozen=True)
class Ref:
    """A parsed reference. Exactly one of ``version``/``alias``/``selector`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None
    selector: str | None = None  # "latest" or "best"

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:v{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return f"{self.name}:{self.selector}"


def parse_ref(text: str) -> Ref:
    """Parse a reference string; raise :class:`BadInput` on anything malformed."""
    text = (text or "").strip()
    if "@" in text:
        name, _, alias = text.rpartition("@")
        return Ref(validate_model_name(name), alias=validate_alias(alias))
    if ":" in text:
        name, _, spec = text.rpartition(":")
        validate_model_name(name)
        if spec in ("latest", "best"):
            return Ref(name, selector=spec)
        try:
            return Ref(name, version=parse_version(spec))
        except BadInput:
            raise BadInput(
                f"invalid reference {text!r}",
                hint="use NAME, NAME:vN, NAME:latest, NAME:best or NAME@alias",
            ) from None
    return Ref(validate_model_name(text), selector="latest")
