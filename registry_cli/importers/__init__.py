"""Move in: import whole registries from the systems regctl replaces (see docs/import.md).

One module reads each source into a :class:`~registry_cli.importers.source.SourceRegistry`
(``mlflow``, ``ftp_tree``, ``yaml_registry``, ``sqlite_registry``), writing
nothing; ``planner`` compares it with the registry (``import``/``skip``/``report``
per version); ``executor`` publishes, settles the lifecycle and appends the old
audit trail. :func:`read_source` picks the reader from what the user typed.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from registry_cli.core.config import Config
from registry_cli.errors import BadInput, NotFound
from registry_cli.importers.executor import ImportReport, execute
from registry_cli.importers.planner import Plan, PlanRow, make_plan
from registry_cli.importers.source import SourceRegistry

KEYWORDS = ("mlflow", "yaml-registry", "sqlite", "ftp", "oci-layout")
USAGE = (
    "use mlflow://HOST:PORT, ftp://USER@HOST:PORT, yaml-registry PATH, "
    "sqlite PATH/registry.db, oci-layout:DIR, or the PATH of an old FTP registry tree"
)


@dataclass
class SourceSpec:
    """What the user typed: ``SOURCE [PATH]`` plus the options that go with it."""

    source: str
    path: str | None = None
    models: list[str] = field(default_factory=list)
    tracking_uri: str | None = None
    password: str | None = None  # for ftp:// (from --password-env / --password-file)
    plain_http: bool = False  # for oci:// (docs/oci.md#import)

    @property
    def kind(self) -> str:
        text = self.source
        if text in ("yaml-registry", "sqlite"):
            return text
        if text == "mlflow" or text.startswith("mlflow://"):
            return "mlflow"
        if text.startswith("oci-layout:"):
            return "oci-layout"
        if "://" in text:
            scheme = text.split("://", 1)[0].lower()
            if scheme in ("ftp", "ftps"):
                return "ftp"
            if scheme == "oci":
                return "oci"
            raise BadInput(f"unknown source scheme {scheme + '://'!r}", hint=USAGE)
        return "ftp-path"

    def check(self) -> None:
        kind = self.kind
        if "://" in self.source and urllib.parse.urlsplit(self.source).password is not None:
            raise BadInput(
                f"a password inside the {self.source.split('://', 1)[0]}:// URL is refused",
                hint="give it with --password-env VAR or --password-file FILE"
                if kind == "ftp"
                else "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead",
            )
        if kind in ("yaml-registry", "sqlite") and not self.path:
            raise BadInput(f"import {kind} needs a PATH", hint=USAGE)
        if kind not in ("yaml-registry", "sqlite") and self.path:
            raise BadInput(f"unexpected argument {self.path!r} after {self.source}", hint=USAGE)
        if self.tracking_uri and kind != "mlflow":
            raise BadInput("--tracking-uri applies to mlflow sources only")
        if self.password is not None and kind != "ftp":
            raise BadInput("a password applies to ftp:// sources only")


def read_source(spec: SourceSpec, config: Config) -> SourceRegistry:
    """Read (and check) the whole source; nothing is written."""
    spec.check()
    stages = config.stages
    kind = spec.kind
    if kind == "mlflow":
        from registry_cli.importers import mlflow

        uri = mlflow.tracking_uri_of(spec.source, spec.tracking_uri, config)
        found = mlflow.read(uri, spec.models, stages)
    elif kind in ("ftp", "ftp-path"):
        from registry_cli.importers import ftp_tree

        found = ftp_tree.read(spec.source, spec.password, stages)
    elif kind == "oci-layout":
        from registry_cli.importers import oci_layout

        found = oci_layout.read(spec.source[len("oci-layout:") :], stages)
    elif kind == "oci":
        from registry_cli.importers import oci_registry

        found = oci_registry.read(spec.source, stages, plain_http=spec.plain_http)
    elif kind == "yaml-registry":
        from registry_cli.importers import yaml_registry

        found = yaml_registry.read(Path(spec.path or ""), stages)
    else:
        from registry_cli.importers import sqlite_registry

        found = sqlite_registry.read(Path(spec.path or ""), stages)
    if spec.models and kind != "mlflow":
        wanted = set(spec.models)
        missing = wanted - {m.name for m in found.models}
        if missing:
            found.close()
            raise NotFound(f"no model {sorted(missing)[0]!r} in {found.display}")
        found.models = [m for m in found.models if m.name in wanted]
    return found


__all__ = [
    "ImportReport",
    "Plan",
    "PlanRow",
    "SourceRegistry",
    "SourceSpec",
    "execute",
    "make_plan",
    "read_source",
]
