"""The one retry and back-off policy of every outbound call (and of local
optimistic-concurrency loops): capped exponential back-off with jitter.

Try ``n`` (``n >= 1`` is a retry) waits ``min(cap_s, base_s * 2 ** (n - 1))``
scaled by a random factor in ``[1 - jitter, 1]``, so concurrent clients that
failed together do not come back together. What retries:

- a transport error (refused, reset, timeout, a cut reply): ``OSError`` and
  ``http.client.HTTPException``, but not ``ssl.SSLError`` (a bad certificate) nor
  a :class:`~registry_cli.errors.RegctlError` (already a decision);
- an HTTP status in :data:`RETRY_STATUSES` (408, 429, 500, 502, 503, 504);
- whatever a caller's own predicate says (e.g. S3's 409 ConditionalRequestConflict).

Any other answer (4xx, a redirect) fails at once: another try would get the
same answer.

Hand-written rather than a dependency (tenacity, urllib3's ``Retry``, the
``requests``/``httpx`` adapters): the CLI runs on the standard library, its
start-up path must stay cheap to import, and the loop is a dozen lines (the
shape of huggingface_hub's ``http_backoff``: max tries, base wait, max wait,
retry-on exceptions and statuses).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from registry_cli.errors import RegctlError

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transport_error(exc: BaseException) -> bool:
    """``OSError`` or ``http.client.HTTPException``, but not a TLS refusal (checked
    without importing ``http.client``, ~17 ms, which the webhook path avoids)."""
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return False  # a certificate or handshake refusal does not heal by itself
    if isinstance(exc, RegctlError):
        return False  # already a decision (some are OSErrors), not a transport fault
    if isinstance(exc, OSError):
        return True
    client = sys.modules.get("http.client")
    return client is not None and isinstance(exc, client.HTTPException)


class RetryPolicy:
    """``tries`` attempts in all (1 = no retry), waits from ``base_s`` doubling up to
    ``cap_s``, each scaled by a random factor in ``[1 - jitter, 1]``. (A plain class:
    ``dataclasses`` costs ~6 ms of imports.)"""

    __slots__ = ("tries", "base_s", "cap_s", "jitter")

    def __init__(
        self, tries: int = 3, base_s: float = 0.5, cap_s: float = 8.0, jitter: float = 0.5
    ) -> None:
        if tries < 1 or base_s < 0 or cap_s < 0 or not 0 <= jitter <= 1:
            raise ValueError("tries >= 1, base_s/cap_s >= 0, 0 <= jitter <= 1")
        self.tries = tries
        self.base_s = base_s
        self.cap_s = cap_s
        self.jitter = jitter

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(tries={self.tries}, base_s={self.base_s}, cap_s={self.cap_s}, "
            f"jitter={self.jitter})"
        )

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry`` (1 for the second try)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, retry - 1))
        return ceiling * (1.0 - self.jitter * rand())

    def with_tries(self, tries: int) -> RetryPolicy:
        return RetryPolicy(max(1, tries), self.base_s, self.cap_s, self.jitter)

    def with_cap(self, cap_s: float) -> RetryPolicy:
        """The same waits, doubling up to ``cap_s`` instead (the outbox's long retries)."""
        return RetryPolicy(self.tries, self.base_s, cap_s, self.jitter)

    def run(
        self,
        call: Callable[[], T],
        *,
        retry_if: Callable[[BaseException], bool] = is_transport_error,
        sleep: Callable[[float], None] | None = None,
    ) -> T:
        """``call()`` until it returns, retrying an exception ``retry_if`` accepts;
        the last exception is raised once the tries are spent."""
        for attempt in range(self.tries):
            if attempt:
                (sleep or time.sleep)(self.delay(attempt))
            try:
                return call()
            except Exception as exc:
                if attempt == self.tries - 1 or not retry_if(exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def retryable_status(status: int) -> bool:
    """Whether an HTTP answer is worth another try."""
    return status in RETRY_STATUSES


class RetryableReply(Exception):
    """Raised inside :meth:`RetryPolicy.run` for an answer worth another try (see
    :func:`retryable_status`); the caller catches the last one and uses its ``reply``."""

    def __init__(self, reply: object, body: bytes = b"") -> None:
        super().__init__(f"HTTP {getattr(reply, 'status', '?')}")
        self.reply = reply
        self.body = body


def retry_reads(exc: BaseException) -> bool:
    """The ``retry_if`` of a read (GET): a transport error or a :class:`RetryableReply`."""
    return isinstance(exc, RetryableReply) or is_transport_error(exc)


# The policies in use:
HTTP = RetryPolicy(tries=3, base_s=0.5, cap_s=8.0)  # remote client, pulls, probes
WEBHOOK = RetryPolicy(tries=3, base_s=0.5, cap_s=8.0)  # ``tries`` comes from the hook
# the outbox goes on with WEBHOOK.with_cap(events.retry_cap_s) for events.retry_for_h
S3_CONFLICT = RetryPolicy(tries=8, base_s=0.02, cap_s=1.0)  # 409 ConditionalRequestConflict
COMMIT = RetryPolicy(tries=50, base_s=0.005, cap_s=0.5, jitter=1.0)  # local optimistic commits
