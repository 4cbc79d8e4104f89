"""The device side of the fleet (docs/fleet.md): follow an alias, report what was pulled.

* :func:`resolve_alias`: the version an alias names, from the served tree's
  ``<stage>/<name>/aliases.json``.
* :class:`Reporter`: POSTs a report to ``<report_url>/api/v1/fleet/reports``
  with any reports waiting in the outbox. A report that cannot be sent (no
  connection, a timeout, a 5xx) waits in ``<cache>/regctl/.fleet-outbox/`` (one
  file per report, at most ``outbox_max``; the oldest are dropped first and
  counted) and goes with the next one. A report the server refuses (4xx) is not
  kept: it would be refused again; a warning says why. With ``report_file`` the
  report is appended to that file (JSON lines) for ``regctl fleet ingest``.

Reporting never fails a pull or a serve: problems are ``warning:`` lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registry_cli.core.config import Config
from registry_cli.core.fleet_reports import (
    DEFAULT_RING,
    MAX_BATCH,
    default_device,
    utc_now,
    validate_device,
    validate_ring,
)
from registry_cli.core.names import parse_version
from registry_cli.errors import BadInput, NotFound
from registry_cli.pull.remote import read_json
from registry_cli.pull.sources import Source
from registry_cli.settings import SECTIONS

OUTBOX = ".fleet-outbox"
ROUTE = "/api/v1/fleet/reports"


def resolve_alias(puller: Any, stage: str, name: str, alias: str) -> int:
    """The version ``alias`` names in ``stage`` of the puller's served tree."""
    transport = puller.open_transport()
    try:
        try:
            doc = read_json(transport, f"{stage}/{name}/aliases.json")
        except NotFound:
            raise NotFound(
                f"{name} has no aliases.json in stage {stage!r} on {transport.description}",
                hint="check the name and --stage; an older server: regctl dist rebuild",
            ) from None
    finally:
        transport.close()
    version = doc.get(alias) if isinstance(doc, dict) else None
    if version is None:
        raise NotFound(
            f"{name} has no alias {alias!r} in stage {stage!r}",
            hint=f"aliases there: {', '.join(sorted(doc)) or 'none'}"
            if isinstance(doc, dict)
            else None,
        )
    return parse_version(version)


def warn(message: str) -> None:
    try:
        sys.stderr.write(f"warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def server_url(source: Source) -> str | None:
    """The registry server a pull from ``http(s)://`` talks to (where reports go)."""
    if source.kind != "http":
        return None
    base = source.base.rstrip("/")
    if base.endswith("/dist"):
        base = base[: -len("/dist")]
    return f"{'https' if source.tls else 'http'}://{source.host}:{source.port}{base}"


class Reporter:
    """Sends (or files) the reports of one device in one ring."""

    def __init__(
        self,
        *,
        device: str,
        ring: str,
        outbox: Path,
        url: str | None = None,
        token: str | None = None,
        report_file: Path | None = None,
        outbox_max: int = 1000,
        timeout: float = 10.0,
    ) -> None:
        self.device = validate_device(device)
        self.ring = validate_ring(ring)
        self.url = url.rstrip("/") if url else None
        if self.url and not self.url.endswith(ROUTE):
            self.url += ROUTE
        self.token = token
        self.report_file = report_file
        self.outbox = outbox
        self.outbox_max = outbox_max
        self.timeout = timeout
        if self.url is None and report_file is None:
            raise BadInput(
                "reports need a registry server or a file",
                hint="set fleet.report_url (or $REGCTL_REPORT_URL), pull from http(s)://, "
                "or give --report-file FILE",
            )

    def make(
        self,
        model: str,
        version: str | None,
        state: str,
        *,
        manifest_sha256: str | None = None,
        detail: Any = None,
    ) -> dict[str, Any]:
        return {
            "report_id": uuid.uuid4().hex,
            "device": self.device,
            "ring": self.ring,
            "model": model,
            "version": version,
            "manifest_sha256": manifest_sha256,
            "state": state,
            "detail": detail,
            "time": utc_now(),
        }

    def report(self, model: str, version: str | None, state: str, **kw: Any) -> str:
        """File or send one report; ``written``, ``sent``, ``queued`` or ``refused``."""
        doc = self.make(model, version, state, **kw)
        try:
            if self.report_file is not None:
                self.report_file.parent.mkdir(parents=True, exist_ok=True)
                with open(self.report_file, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(doc, separators=(",", ":")) + "\n")
                return "written"
            return self.send(doc)
        except OSError as exc:
            warn(f"report not kept: {exc}")
            return "refused"

    # ------------------------------------------------------------ sending
    def waiting(self) -> list[Path]:
        try:
            names = sorted(n for n in os.listdir(self.outbox) if n.endswith(".json"))
        except FileNotFoundError:
            return []
        return [self.outbox / n for n in names]

    def send(self, doc: dict[str, Any]) -> str:
        queued = self.waiting()[: MAX_BATCH - 1]
        batch = []
        for path in queued:
            try:
                batch.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # damaged or taken by another process
        status, message = self._post([*batch, doc])
        if status is not None and status < 300:
            for path in queued:
                path.unlink(missing_ok=True)
            return "sent"
        if status is not None and status < 500:
            warn(f"report to {self.url} refused ({status}): {message}")
            return "refused"
        self._queue(doc)
        warn(f"report to {self.url} not sent ({message}); kept in the outbox {self.outbox}")
        return "queued"

    def _post(self, reports: list[dict[str, Any]]) -> tuple[int | None, str]:
        assert self.url is not None
        headers = {"Content-Type": "application/json", "User-Agent": "regctl"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = json.dumps(reports, separators=(",", ":")).encode()
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return reply.status, "ok"
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError, OSError):
                message = exc.reason
            return exc.code, str(message)
        except (OSError, ValueError) as exc:  # refused, unreachable, timeout
            return None, str(getattr(exc, "reason", None) or exc)

    def _queue(self, doc: dict[str, Any]) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{doc['report_id']}.json"
        tmp = self.outbox / f".{name}.tmp"
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.outbox / name)
        waiting = self.waiting()
        extra = len(waiting) - self.outbox_max
        if extra > 0:
            for path in waiting[:extra]:
                path.unlink(missing_ok=True)
            self._count_dropped(extra)

    def _count_dropped(self, n: int) -> None:
        counter = self.outbox / "dropped"
        try:
            total = int(counter.read_text() or 0) + n
        except (OSError, ValueError):
            total = n
        counter.write_text(f"{total}\n")
        warn(f"the report outbox is full ({self.outbox_max}); {total} report(s) dropped so far")

    def dropped(self) -> int:
        try:
            return int((self.outbox / "dropped").read_text() or 0)
        except (OSError, ValueError):
            return 0


def reporter_from(
    config: Config,
    flags: Mapping[str, Any],
    *,
    source: Source | None,
    cache_root: Path,
    fallback_token: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Reporter:
    """A reporter from flags (``device``, ``ring``, ``report_url``, ``report_file``)
    and the ``fleet:`` section."""
    env = os.environ if env is None else env
    values = SECTIONS["fleet"].resolve(
        {k: v for k, v in flags.items() if k != "report_file"}, config.section("fleet"), env
    )
    token_env = values.get("report_token_env")
    token = (env.get(token_env) if token_env else None) or fallback_token
    return Reporter(
        device=values["device"] or default_device(),
        ring=values["ring"] or DEFAULT_RING,
        url=values["report_url"] or (server_url(source) if source is not None else None),
        token=token or env.get("REGCTL_TOKEN") or None,
        report_file=flags.get("report_file"),
        outbox=cache_root / "regctl" / OUTBOX,
        outbox_max=values["outbox_max"],
    )


def pull_and_report(
    puller: Any,
    reporter: Reporter | None,
    name: str,
    *,
    stage: str,
    version: str | int = "latest",
    alias: str | None = None,
    **pull_kw: Any,
) -> Any:
    """Pull (following ``alias`` if given); report ``pulled``, or ``failed`` and raise."""
    try:
        if alias is not None:
            version = resolve_alias(puller, stage, name, alias)
        result = puller.pull(name, stage=stage, version=version, **pull_kw)
    except Exception as exc:
        if reporter is not None:
            detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            wanted = None if str(version) == "latest" else _vname(version)
            reporter.report(name, wanted, "failed", detail=str(detail)[:2000])
        raise
    if reporter is not None:
        reporter.report(
            name,
            result.version,
            "pulled",
            manifest_sha256=manifest_sha256(result.path),
            detail={"cached": result.cached, "alias": alias} if alias else None,
        )
    return result


def manifest_sha256(folder: Path) -> str | None:
    """sha256 of a pulled version's manifest.json (what the served tree records)."""
    try:
        return hashlib.sha256((Path(folder) / "manifest.json").read_bytes()).hexdigest()
    except OSError:
        return None


def _vname(version: str | int) -> str | None:
    try:
        return f"v{parse_version(version)}"
    except BadInput:
        return None
