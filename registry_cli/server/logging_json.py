"""The server's logs (see docs/operations.md, "Logs"): ``--log-format text`` (uvicorn's
lines, as before) or ``json``: one JSON object per line on stderr, per request
(``"event": "request"``, from :func:`access_logger`) and per event (start, stop,
warnings: every record of uvicorn's and regctl's loggers).

Never a secret: a request is logged by its route template and its path, with the
values of secret-looking query parameters replaced by ``[redacted]``; no header is
logged at all; and every message passes :func:`redact`, which hides bearer
credentials, ``rgt_`` token secrets and ``password=``/``token=`` style values.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from registry_cli.server.metrics import Finished

ACCESS = "regctl.access"
REDACTED = "[redacted]"
SECRET_WORDS = ("token", "password", "passwd", "secret", "session", "csrf", "key", "auth")
_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"rgt_[A-Za-z0-9_-]+"),
    re.compile(r"(?i)\b([\w-]*(?:" + "|".join(SECRET_WORDS) + r")[\w-]*)([=:]\s*)([^\s&,;\"']+)"),
)


def redact(text: str) -> str:
    """``text`` with every credential-looking part replaced by ``[redacted]``."""
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PATTERNS[1].sub(REDACTED, text)
    return _PATTERNS[2].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def safe_query(query: str) -> str:
    """A query string with the value of every secret-looking parameter hidden."""
    if not query:
        return ""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    shown = [
        (k, REDACTED if any(w in k.lower() for w in SECRET_WORDS) else redact(v)) for k, v in pairs
    ]
    return urllib.parse.urlencode(shown, safe="[]/")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        else:
            doc["message"] = redact(record.getMessage())
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = redact(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        return json.dumps(doc, ensure_ascii=False)


class RedactAccess(logging.Filter):
    """uvicorn's own access lines (``text``) with secret query values hidden too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, full_path, version, status = record.args
            path, _, query = str(full_path).partition("?")
            shown = redact(path) + (f"?{safe_query(query)}" if query else "")
            record.args = (client, method, shown, version, status)
        return True


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` for ``log_format``: its own for ``text`` (with
    :class:`RedactAccess` on the access lines), else one JSON object a line."""
    if log_format != "json":
        from uvicorn.config import LOGGING_CONFIG

        config = copy.deepcopy(LOGGING_CONFIG)
        config.setdefault("filters", {})["redact"] = {"()": RedactAccess}
        config["handlers"]["access"]["filters"] = ["redact"]
        return config
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    quiet = {"handlers": [], "level": "WARNING", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "uvicorn.access": quiet,  # the request objects are ours: see access_logger
            ACCESS: {"handlers": ["json"], "level": "INFO", "propagate": False},
            "registry_cli": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
    }


def event(name: str, **fields: Any) -> None:
    """Log one event (``serving``, ``draining``...) as its own object."""
    logging.getLogger(ACCESS).info(name, extra={"event": name, "fields": fields})


def access_logger(log_format: str) -> Callable[[Finished], None] | None:
    """What the middleware calls for each answered request (None: uvicorn logs them)."""
    if log_format != "json":
        return None
    logger = logging.getLogger(ACCESS)

    def log(done: Finished) -> None:
        query = safe_query(done.query)
        fields = {
            "method": done.method,
            "route": done.route,
            "path": redact(done.path) + (f"?{query}" if query else ""),
            "status": done.status,
            "duration_ms": round(done.seconds * 1000, 3),
            "bytes_in": done.bytes_in,
            "client": done.client,
        }
        logger.info("request", extra={"event": "request", "fields": fields})

    return log
