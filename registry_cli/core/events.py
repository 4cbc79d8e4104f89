"""Events (see docs/events.md): what happens after a change is committed.

The registry calls :func:`committed` once per committed change, after the
model lock is released, with the change's audit entry. Each webhook whose
``events`` name the change gets one POST:

- body: JSON ``{event, action, model, version, actor, time, changed}``
  (``changed`` is the audit entry's ``details``; ``action`` the audit action,
  e.g. ``alias-rm`` for an ``alias`` event);
- header ``X-Regctl-Signature: sha256=<hex HMAC-SHA256 of the body>`` keyed
  with the secret in ``$secret_env``; ``X-Regctl-Event``; ``X-Regctl-Delivery``
  (one id for all tries of a delivery, so receivers can drop duplicates);
- ``timeout_s`` (5) per try, ``tries`` (3) with the back-off of
  :data:`registry_cli.net.retry.WEBHOOK`, on a transport error, 408, 429, 500,
  502, 503 or 504; any other answer (or a redirect) fails at once.

A failed delivery prints one ``warning:`` line on stderr and never raises:
the change is committed whatever the receiver does. With the secret's
variable unset or empty, nothing is sent unsigned: one warning instead.
No-op changes (``details.noop``) are not events. The POST goes over a plain
socket (``ssl`` for https), imported only when a hook matches; with a proxy
variable set (``http_proxy``, ``https_proxy``, ``all_proxy``) urllib sends it.
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
from registry_cli.net.retry import WEBHOOK, retryable_status

SIGNATURE_HEADER = "X-Regctl-Signature"


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
    try:
        body = event_body(event, entry)
        if len(matching) == 1:
            deliver(matching[0], event, body)
            return
        # in parallel, so dead receivers cost one timeout budget, not one each
        threads = [
            threading.Thread(target=deliver, args=(hook, event, body), name="regctl-webhook")
            for hook in matching
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except Exception as exc:  # the change is committed whatever happens here
        warn(f"webhooks for {event} not delivered: {type(exc).__name__}: {exc}")


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
    from registry_cli.version import __version__

    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"regctl/{__version__}",
        "X-Regctl-Event": event,
        "X-Regctl-Delivery": uuid.uuid4().hex,
        SIGNATURE_HEADER: signature,
    }
    post = _post_via_proxy if _proxied(hook.url) else _post_direct
    problem = "no try made"
    policy = WEBHOOK.with_tries(hook.tries)
    for attempt in range(policy.tries):
        if attempt:
            time.sleep(policy.delay(attempt))
        try:
            status = post(hook.url, body, headers, hook.timeout_s)
        except (OSError, ValueError) as exc:  # refused, unreachable, timeout, TLS, garbage
            reason = getattr(exc, "reason", None) or exc
            problem = str(reason) or type(exc).__name__
            continue
        if 200 <= status < 300:
            return True
        problem = f"HTTP {status}"
        if not retryable_status(status):
            break  # refused or redirected: another try would get the same answer
    tries = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
    warn(f"webhook {hook.shown_url} ({event}) failed after {tries}: {problem}")
    return False


def _proxied(url: str) -> bool:
    """Whether a proxy variable may apply (then urllib, which knows proxies, sends it)."""
    scheme = url.split(":", 1)[0].lower()
    names = (f"{scheme}_proxy", "all_proxy")
    return any(os.environ.get(n) or os.environ.get(n.upper()) for n in names)


def _post_direct(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """One HTTP/1.1 POST over a socket; returns the status code.

    Only the status line of the reply is read. This costs ~3 ms of imports where
    urllib.request costs ~25 ms (http.client, email, ssl): the difference between
    meeting and missing the 10 ms budget of a webhook on a CLI command. TLS
    (``https://``) uses the system's default trust store and checks the host name.
    """
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = host if ":" not in host else f"[{host}]"
    if parts.port:
        authority += f":{parts.port}"
    lines = [f"POST {target} HTTP/1.1", f"Host: {authority}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()] + ["Connection: close", "", ""]
    deadline = time.monotonic() + timeout_s
    # an ASCII host needs no idna codec (1 ms of imports): getaddrinfo takes bytes
    address = host.encode("ascii") if host.isascii() else host
    sock = socket.create_connection((address, port), timeout=timeout_s)  # type: ignore[arg-type]
    try:
        if https:
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        sock.sendall("\r\n".join(lines).encode("latin-1") + body)
        reply = b""
        while b"\r\n" not in reply and len(reply) < 8192:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(remaining)
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    finally:
        sock.close()
    status_line = reply.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        raise ValueError("not an HTTP reply")
    return int(status_line[1])


def _post_via_proxy(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """The same POST through urllib (environment proxies, ``no_proxy``); redirects not followed."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # a redirect is not a delivery (and would resend the body elsewhere)

    opener = urllib.request.build_opener(NoRedirect())
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with opener.open(request, timeout=timeout_s) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
