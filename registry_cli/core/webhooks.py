"""The ``webhooks:`` section of registry.yaml (see docs/events.md): parsed and validated at load.

Pure (stdlib only), so ``core/config.py`` can use it without importing any HTTP
code; delivery lives in ``core/events.py``.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

EVENTS = ("publish", "promote", "rollback", "archive", "alias", "tag", "rollout")
ACTION_EVENTS = {
    "publish": "publish",
    "promote": "promote",
    "rollback": "rollback",
    "archive": "archive",
    "alias-set": "alias",
    "alias-rm": "alias",
    "tag": "tag",
    "rollout-start": "rollout",  # rollouts in rings (docs/fleet.md)
    "rollout-advance": "rollout",
    "rollout-complete": "rollout",
    "rollout-abort": "rollout",
}
"""Audit action → webhook event. Other actions (gc, token-*) are not events."""

KEYS = ("url", "events", "secret_env", "timeout_s", "tries")
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_TRIES = 3
MAX_TRIES = 10
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Webhook:
    """One receiver: where to POST, which events, the env var holding the HMAC secret."""

    url: str
    events: frozenset[str]
    secret_env: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    tries: int = DEFAULT_TRIES

    @property
    def shown_url(self) -> str:
        """The URL for messages: no query string or fragment (they may carry tokens)."""
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class WebhookConfigError(ValueError):
    """A bad ``webhooks:`` entry; ``index``/``key`` locate it for the line number."""

    def __init__(self, message: str, index: int | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.key = key

    def line_in(self, root_node: Any) -> int | None:
        """The 1-based line of the offending item/key in the composed YAML document."""
        node = _value_of(root_node, "webhooks")
        if node is None:
            return None
        line = node.start_mark.line + 1
        items = getattr(node, "value", None)
        if self.index is None or not isinstance(items, list) or self.index >= len(items):
            return line
        item = items[self.index]
        line = item.start_mark.line + 1
        if self.key is not None:
            for key_node, _value in getattr(item, "value", None) or []:
                if getattr(key_node, "value", None) == self.key:
                    return int(key_node.start_mark.line) + 1
        return line


def _value_of(mapping_node: Any, key: str) -> Any:
    for item in getattr(mapping_node, "value", None) or []:
        if isinstance(item, tuple) and getattr(item[0], "value", None) == key:
            return item[1]
    return None


def _url(value: Any, index: int) -> str:
    if not isinstance(value, str) or not value:
        raise WebhookConfigError("webhooks: url must be an http(s) URL", index, "url")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
        raise WebhookConfigError("webhooks: url has spaces or control characters", index, "url")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookConfigError(
            f"webhooks: url must be an http(s) URL, got {parts.scheme or value!r}", index, "url"
        )
    if parts.password is not None:
        raise WebhookConfigError(
            "webhooks: no password in the url (it would show in warnings); "
            "receivers authenticate deliveries by the signature",
            index,
            "url",
        )
    return value


def _events(value: Any, index: int) -> frozenset[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(e, str) and e in EVENTS for e in value)
    ):
        raise WebhookConfigError(
            f"webhooks: events must be a non-empty list of: {', '.join(EVENTS)}", index, "events"
        )
    return frozenset(value)


def _number(value: Any, index: int, key: str, *, integer: bool) -> Any:
    ok = not isinstance(value, bool) and (
        isinstance(value, int) if integer else isinstance(value, (int, float))
    )
    if integer and ok and not 1 <= value <= MAX_TRIES:
        ok = False
    if not integer and ok and not value > 0:
        ok = False
    if not ok:
        want = f"a whole number 1-{MAX_TRIES}" if integer else "a positive number of seconds"
        raise WebhookConfigError(f"webhooks: {key} must be {want}", index, key)
    return value


def parse_webhooks(value: Any) -> tuple[Webhook, ...]:
    """Validate the ``webhooks:`` list; :class:`WebhookConfigError` names what is wrong."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WebhookConfigError("webhooks must be a list of {url, events, secret_env}")
    hooks = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise WebhookConfigError(
                "webhooks: each entry is a mapping {url, events, secret_env}", index
            )
        for key in item:
            if key not in KEYS:
                hint = " (put the secret in an environment variable named by secret_env)"
                raise WebhookConfigError(
                    f"webhooks: unknown key {key!r}{hint if key == 'secret' else ''}; "
                    f"keys: {', '.join(KEYS)}",
                    index,
                    str(key),
                )
        for key in ("url", "events", "secret_env"):
            if key not in item:
                raise WebhookConfigError(f"webhooks: entry {index + 1} has no {key}", index)
        secret_env = item["secret_env"]
        if not isinstance(secret_env, str) or not _ENV_RE.match(secret_env):
            raise WebhookConfigError(
                "webhooks: secret_env must name an environment variable (e.g. REGCTL_HOOK_SECRET)",
                index,
                "secret_env",
            )
        hooks.append(
            Webhook(
                url=_url(item["url"], index),
                events=_events(item["events"], index),
                secret_env=secret_env,
                timeout_s=float(
                    _number(
                        item.get("timeout_s", DEFAULT_TIMEOUT_S), index, "timeout_s", integer=False
                    )
                ),
                tries=_number(item.get("tries", DEFAULT_TRIES), index, "tries", integer=True),
            )
        )
    return tuple(hooks)
