"""Events (see docs/events.md): the webhook deliveries of a committed change.

In the change's commit step (right after the state is written, with its audit line)
:func:`record` writes one outbox delivery (``core/outbox.py``) per webhook whose
``events`` name the change; after the lock is released :func:`announce` tries them at
once in the process that made the change (``tries`` tries, as before the outbox), or,
where a background sender runs (``serve-registry``), leaves them to it. What a try
could not send stays in the outbox for any ``serve-registry`` or ``regctl events
flush``.

- body: JSON ``{event, action, model, version, actor, time, changed}``
  (``changed`` is the audit entry's ``details``; ``action`` the audit action,
  e.g. ``alias-rm`` for an ``alias`` event);
- header ``X-Regctl-Signature: sha256=<hex HMAC-SHA256 of the body>`` keyed with the
  secret in ``$secret_env`` (computed when the delivery is recorded: the outbox keeps
  the signature, never the secret); ``X-Regctl-Event``; ``X-Regctl-Delivery`` (the
  outbox id: one id for every try, in any process, so receivers can drop duplicates);
- ``timeout_s`` (5) per try; a transport error, 408, 429, 500, 502, 503 or 504 is
  retried; any other answer (or a redirect) is a refusal: a dead letter at once.

A failed try prints one ``warning:`` line on stderr and never raises: the change is
committed whatever the receiver does. With the secret's variable unset or empty,
nothing is recorded or sent unsigned: one warning instead. No-op changes
(``details.noop``) are not events. The POST goes over a plain socket (``ssl`` for
https), imported only when a hook matches; with a proxy variable set (``http_proxy``,
``https_proxy``, ``all_proxy``) urllib sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from registry_cli.core import outbox
from registry_cli.core.config import Config
from registry_cli.core.webhooks import ACTION_EVENTS, Webhook
from registry_cli.net.retry import WEBHOOK, retryable_status
from registry_cli.storage.store import Store

SIGNATURE_HEADER = "X-Regctl-Signature"
KIND = "webhook"


@dataclass
class Queued:
    """A delivery recorded by this process for one hook, to try at once."""

    hook: Webhook
    event: str
    delivery: outbox.Delivery
    mine: bool  # claimed by this process at enqueue (else left to a background sender)
    policy: outbox.Policy


def record(store: Store, config: Config, entry: dict[str, Any]) -> list[Queued]:
    """In the commit step of ``entry`` (an audit line): put its deliveries in the outbox."""
    hooks = config.webhooks
    event = ACTION_EVENTS.get(str(entry.get("action")))
    details = entry.get("details") or {}
    if not hooks or event is None or details.get("noop"):
        return []
    matching = [h for h in hooks if event in h.events]
    if not matching:
        return []
    queued: list[Queued] = []
    try:
        body = event_body(event, entry)
        policy = outbox.policy(config)
        background = outbox.has_background(store)
        for hook in matching:
            secret = os.environ.get(hook.secret_env)
            if not secret:
                warn(
                    f"webhook {hook.shown_url} ({event}) not sent: ${hook.secret_env} is not "
                    "set (regctl does not send unsigned deliveries)"
                )
                continue
            payload = {
                "url": hook.url,
                "event": event,
                "body": body.decode(),
                "signature": sign(secret, body),
                "timeout_s": hook.timeout_s,
            }
            queued.append(_queue(store, policy, hook, event, payload, background))
    except Exception as exc:  # the change is committed whatever happens here
        warn(f"webhooks for {event} not recorded: {type(exc).__name__}: {exc}")
    return queued


def _queue(
    store: Store,
    policy: outbox.Policy,
    hook: Webhook,
    event: str,
    payload: dict[str, Any],
    background: bool,
) -> Queued:
    """Record one delivery; claimed by this process for its tries unless a background
    sender runs here. When the outbox cannot be written, a delivery kept in memory."""
    hold = None if background else _inline_s(hook) + policy.claim_s
    try:
        delivery = outbox.enqueue(store, KIND, payload, policy, claim_for_s=hold)
        return Queued(hook, event, delivery, not background, policy)
    except Exception as exc:
        warn(
            f"webhook {hook.shown_url} ({event}) not queued in the outbox "
            f"({type(exc).__name__}: {exc}); trying it from memory"
        )
        delivery = outbox.Delivery(outbox.new_id(), KIND, payload, 0, {}, "", None)
        return Queued(hook, event, delivery, True, policy)


def _inline_s(hook: Webhook) -> float:
    """The longest the tries at once may take: every timeout plus the waits between."""
    waits = sum(min(WEBHOOK.cap_s, WEBHOOK.base_s * 2 ** (n - 1)) for n in range(1, hook.tries))
    return hook.tries * hook.timeout_s + waits


def announce(queued: list[Queued]) -> None:
    """After the lock: try this process's deliveries at once (in parallel, so dead
    receivers cost one budget, not one each); the rest is the background sender's."""
    mine = [q for q in queued if q.mine]
    if not mine:
        return
    if len(mine) == 1:
        _try_now(mine[0])
        return
    threads = [threading.Thread(target=_try_now, args=(q,), name="regctl-webhook") for q in mine]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _try_now(queued: Queued) -> bool:
    """The hook's tries of one delivery; one warning when none got through."""
    where = f"webhook {queued.hook.shown_url} ({queued.event})"
    try:
        outcome = outbox.attempt(queued.delivery, queued.policy, tries=queued.hook.tries)
    except Exception as exc:  # last resort (the outbox unwritable): never fail the change
        warn(f"{where} failed: {type(exc).__name__}: {exc}")
        return False
    if outcome.status == "sent":
        return True
    tries = f"{outcome.tries} {'try' if outcome.tries == 1 else 'tries'}"
    warn(f"{where} failed after {tries}: {outcome.problem}")
    return False


def deliver(hook: Webhook, event: str, body: bytes) -> bool:
    """POST ``body`` to ``hook`` now, with its tries, outside the outbox (a one-off);
    True when a try got a 2xx. Never raises."""
    secret = os.environ.get(hook.secret_env)
    if not secret:
        warn(
            f"webhook {hook.shown_url} ({event}) not sent: ${hook.secret_env} is not set "
            "(regctl does not send unsigned deliveries)"
        )
        return False
    payload = {
        "url": hook.url,
        "event": event,
        "body": body.decode(),
        "signature": sign(secret, body),
        "timeout_s": hook.timeout_s,
    }
    delivery = outbox.Delivery(outbox.new_id(), KIND, payload, 0, {}, "", None)
    return _try_now(Queued(hook, event, delivery, True, outbox.Policy()))


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


def _shown(url: str) -> str:
    return Webhook(url, frozenset(), "_").shown_url


def send(delivery: outbox.Delivery) -> None:
    """The outbox sender of ``webhook`` deliveries: one POST of the recorded body and
    signature; :class:`~registry_cli.core.outbox.Retry` or ``GiveUp`` when it fails."""
    from registry_cli.version import __version__

    payload = delivery.payload
    url = str(payload["url"])
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"regctl/{__version__}",
        "X-Regctl-Event": str(payload["event"]),
        "X-Regctl-Delivery": delivery.id,
        SIGNATURE_HEADER: str(payload["signature"]),
    }
    post = _post_via_proxy if _proxied(url) else _post_direct
    try:
        status = post(url, str(payload["body"]).encode(), headers, float(payload["timeout_s"]))
    except (OSError, ValueError) as exc:  # refused, unreachable, timeout, TLS, garbage
        reason = getattr(exc, "reason", None) or exc
        raise outbox.Retry(str(reason) or type(exc).__name__) from None
    if 200 <= status < 300:
        return
    if retryable_status(status):
        raise outbox.Retry(f"HTTP {status}")
    raise outbox.GiveUp(f"HTTP {status}")  # refused or redirected: the same answer again


outbox.register_sender(
    KIND,
    send,
    try_s=lambda p: float(p.get("timeout_s", 5.0)),
    lane=lambda p: str(p.get("url")),
    describe=lambda p: f"webhook {_shown(str(p.get('url')))} ({p.get('event')})",
)


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
