"""Events (SPEC §12): what happens after a change is committed.

The registry calls :func:`committed` once per committed change, after the
model lock is released, with the change's audit entry. Each webhook whose
``events`` name the change gets one POST:

- body: JSON ``{event, action, model, version, actor, time, changed}``
  (``changed`` is the audit entry's ``details``; ``action`` the audit action,
  e.g. ``alias-rm`` for an ``alias`` event);
- header ``X-Regctl-Signature: sha256=<hex HMAC-SHA256 of the body>`` keyed
  with the secret in ``$secret_env``; ``X-Regctl-Event``; ``X-Regctl-Delivery``
  (one id for all tries of a delivery, so receivers can drop duplicates);
- ``timeout_s`` (5) per try, ``tries`` (3) with back-off, on a transport
  error, 408, 429 or 5xx; any other non-2xx (or a redirect) fails at once.

A failed delivery prints one ``warning:`` line on stderr and never raises:
the change is committed whatever the receiver does. With the secret's
variable unset or empty, nothing is sent unsigned: one warning instead.
No-op changes (``details.noop``) are not events. The HTTP code (urllib)
is imported only when a hook matches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import time
import uuid
from typing import Any

from registry_cli.core.config import Config
from registry_cli.core.webhooks import ACTION_EVENTS, Webhook

SIGNATURE_HEADER = "X-Regctl-Signature"
BACKOFF_S = 0.5  # before the second try; doubles for each further one


def committed(config: Config, entry: dict[str, Any]) -> None:
    """Deliver ``entry`` (an audit line: time, actor, action, model, version, details)."""
    hooks = config.webhooks
    if not hooks:
        return
    event = ACTION_EVENTS.get(str(entry.get("action")))
    details = entry.get("details") or {}
    if event is None or details.get("noop"):
        return
    matching = [h for h in hooks if event in h.events]
    if not matching:
        return
    body = event_body(event, entry)
    if len(matching) == 1:
        deliver(matching[0], event, body)
        return
    threads = [
        threading.Thread(target=deliver, args=(hook, event, body), name="regctl-webhook")
        for hook in matching
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def event_body(event: str, entry: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for ``entry``."""
    doc = {
        "event": event,
        "action": entry.get("action"),
        "model": entry.get("model"),
        "version": entry.get("version"),
        "actor": entry.get("actor"),
        "time": entry.get("time"),
        "changed": entry.get("details") or {},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, body: bytes) -> str:
    """The ``X-Regctl-Signature`` value: ``sha256=<hex HMAC-SHA256 of body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def warn(message: str) -> None:
    """One line on stderr; a broken stderr must not fail the change either."""
    try:
        sys.stderr.write(f"warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def deliver(hook: Webhook, event: str, body: bytes) -> bool:
    """POST ``body`` to ``hook`` with retries; True when a try got a 2xx. Never raises."""
    secret = os.environ.get(hook.secret_env)
    if not secret:
        warn(
            f"webhook {hook.shown_url} ({event}) not sent: ${hook.secret_env} is not set "
            "(regctl does not send unsigned deliveries)"
        )
        return False
    try:
        return _post_with_retries(hook, event, body, sign(secret, body))
    except Exception as exc:  # last resort: a webhook never fails the change
        warn(f"webhook {hook.shown_url} ({event}) failed: {type(exc).__name__}: {exc}")
        return False


def _post_with_retries(hook: Webhook, event: str, body: bytes, signature: str) -> bool:
    import urllib.error
    import urllib.request

    from registry_cli import __version__

    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"regctl/{__version__}",
        "X-Regctl-Event": event,
        "X-Regctl-Delivery": uuid.uuid4().hex,
        SIGNATURE_HEADER: signature,
    }
    opener = _opener()
    problem = "no try made"
    for attempt in range(hook.tries):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        request = urllib.request.Request(hook.url, data=body, method="POST", headers=headers)
        try:
            with opener.open(request, timeout=hook.timeout_s) as reply:
                reply.read(65536)
                return True
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            exc.close()
            if not (exc.code in (408, 429) or exc.code >= 500):
                break  # the receiver refused: another try would get the same answer
        except (OSError, ValueError) as exc:  # refused, unreachable, timeout, TLS
            reason = getattr(exc, "reason", None) or exc
            problem = str(reason) or type(exc).__name__
    tries = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
    warn(f"webhook {hook.shown_url} ({event}) failed after {tries}: {problem}")
    return False


def _opener() -> Any:
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # a redirect is not a delivery (and would resend the body elsewhere)

    return urllib.request.build_opener(NoRedirect())
