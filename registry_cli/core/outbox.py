"""The outbox (see docs/events.md): side effects of committed changes, kept in the root
until they are sent, so they survive the process that made the change.

One document per delivery, ``.regctl/outbox/<id>.json``, on any :class:`Store` (folder
or object store)::

    {"format": 1, "id", "kind", "payload", "created", "give_up_at", "tries",
     "next_try", "last_error", "claim": {"by", "until"} | null}

- :func:`enqueue` creates it (create-if-absent) as the change commits; ``id`` sorts by
  creation time and is the delivery's id on every try (``X-Regctl-Delivery``).
- A sender :func:`claim`\\ s it by a conditional replace: one claim at a time, whoever
  the sender is (servers, CLIs); a claim whose ``until`` has passed (its sender was
  killed) is taken over. Several processes may therefore try one delivery at most once
  each per claim period: delivery is at least once, never twice at the same time.
- :func:`attempt` calls the sender of the delivery's ``kind`` (see
  :func:`register_sender`) and :func:`finish` records the outcome: sent → the document
  is deleted; failed → ``tries`` and ``next_try`` move on (capped exponential back-off,
  the policy of :data:`registry_cli.net.retry.WEBHOOK` with ``events.retry_cap_s`` as
  its cap); failed for good, or past ``give_up_at`` (``events.retry_for_h`` after the
  change) → moved to ``.regctl/outbox/dead/<id>.json``, a dead letter, counted by
  :func:`outbox_depth`.

Times in the documents are Unix seconds (``created`` is also ISO 8601): the machines
sharing a root need roughly agreeing clocks (a skew shortens or lengthens claims).
Standard library only: loaded by a change only when something is to be delivered.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from registry_cli.storage.store import AlreadyExists, Conflict, Missing, Store

OUTBOX = ".regctl/outbox"
DEAD = f"{OUTBOX}/dead"
LOCK = ".regctl/outbox.lock"  # folder roots: replace is conditional under this flock
FORMAT = 1


class Retry(Exception):  # noqa: N818 (a decision, not a fault)
    """Raised by a sender: this try failed, another one later may work."""


class GiveUp(Exception):  # noqa: N818
    """Raised by a sender: this delivery can never work (a refusal); a dead letter now."""


@dataclass(frozen=True)
class Policy:
    """The ``events:`` settings every sender follows."""

    retry_for_s: float = 24 * 3600.0
    cap_s: float = 900.0
    poll_s: float = 5.0
    claim_s: float = 30.0

    def delay(self, tries: int) -> float:
        """The wait after the ``tries``-th failed try: the webhook policy's waits (0.5 s,
        1 s, ...) doubling on up to ``cap_s``."""
        from registry_cli.net.retry import WEBHOOK

        return WEBHOOK.with_cap(self.cap_s).delay(max(1, tries))


def policy(config: Any) -> Policy:
    """The :class:`Policy` of a :class:`~registry_cli.core.config.Config` (or None)."""
    from registry_cli.settings import SECTIONS

    got = SECTIONS["events"].resolve(config=config.section("events") if config else None)
    return Policy(
        retry_for_s=float(got["retry_for_h"]) * 3600.0,
        cap_s=float(got["retry_cap_s"]),
        poll_s=float(got["poll_s"]),
        claim_s=float(got["claim_s"]),
    )


# ------------------------------------------------------------------ senders by kind
Send = Callable[["Delivery"], None]


@dataclass(frozen=True)
class Sender:
    """How to send one kind of delivery: ``send`` returns on success, raises
    :class:`Retry` or :class:`GiveUp` (any other exception counts as :class:`Retry`);
    ``try_s(payload)`` bounds one try (the claim lasts that plus ``claim_s``);
    ``lane(payload)`` groups deliveries sent one after another, in order (a URL);
    ``describe(payload)`` names one in messages (never a secret)."""

    kind: str
    send: Send
    try_s: Callable[[dict[str, Any]], float]
    lane: Callable[[dict[str, Any]], str]
    describe: Callable[[dict[str, Any]], str]


_SENDERS: dict[str, Sender] = {}


def register_sender(
    kind: str,
    send: Send,
    *,
    try_s: Callable[[dict[str, Any]], float] | float = 60.0,
    lane: Callable[[dict[str, Any]], str] | None = None,
    describe: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    """Make ``kind`` sendable in this process (called at import by the module that owns
    the kind). A process without a kind's sender leaves its deliveries alone."""
    bound = try_s if callable(try_s) else (lambda _p, s=float(try_s): s)
    _SENDERS[kind] = Sender(
        kind, send, bound, lane or (lambda _p: kind), describe or (lambda _p: kind)
    )


def sender(kind: str) -> Sender | None:
    return _SENDERS.get(kind)


# ------------------------------------------------------------------ documents
def new_id(now: float | None = None) -> str:
    """``20261207T110000123456Z-<16 hex>``: sorts by creation time, unique."""
    stamp = _dt.datetime.fromtimestamp(time.time() if now is None else now, _dt.timezone.utc)
    return f"{stamp.strftime('%Y%m%dT%H%M%S%fZ')}-{os.urandom(8).hex()}"


def key_of(delivery_id: str, dead: bool = False) -> str:
    return f"{DEAD if dead else OUTBOX}/{delivery_id}.json"


def owner() -> str:
    """Who claims: host, pid and a per-process nonce (a reused pid is someone else)."""
    pid = os.getpid()
    if _OWNER.get("pid") != pid:
        _OWNER.update(pid=pid, name=f"{os.uname().nodename}:{pid}:{os.urandom(4).hex()}")
    return str(_OWNER["name"])


_OWNER: dict[str, Any] = {}


def dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@contextlib.contextmanager
def _guard(store: Store) -> Iterator[None]:
    """Where ``replace`` needs it (a folder root), the outbox's flock around read+replace."""
    with store.lock(LOCK, what="the outbox"):
        yield


@dataclass
class Delivery:
    """One claimed delivery: what a sender gets. ``store`` is None for a delivery that
    could not be recorded (sent once, from memory)."""

    id: str
    kind: str
    payload: dict[str, Any]
    tries: int
    doc: dict[str, Any] = field(repr=False)
    tag: str = field(default="", repr=False)
    store: Store | None = field(default=None, repr=False)

    def keep_alive(self, seconds: float) -> bool:
        """Extend this process's claim by ``seconds`` from now (a long send, e.g. a big
        push); False when the claim was lost (another sender took it over)."""
        if self.store is None:
            return True
        doc = dict(self.doc, claim={"by": owner(), "until": time.time() + seconds})
        try:
            with _guard(self.store):
                self.tag = self.store.replace(key_of(self.id), dump(doc), if_match=self.tag)
        except (Conflict, Missing):
            return False
        self.doc = doc
        return True


def enqueue(
    store: Store,
    kind: str,
    payload: dict[str, Any],
    policy: Policy | None = None,
    *,
    claim_for_s: float | None = None,
) -> Delivery:
    """Record a delivery of ``kind`` (its ``payload`` must be JSON); with ``claim_for_s``
    this process holds the claim for that long (to try it at once, see :func:`attempt`),
    else any sender may take it now."""
    pol = policy or Policy()
    now = time.time()
    delivery_id = new_id(now)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "id": delivery_id,
        "kind": kind,
        "payload": payload,
        "created": _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z"),
        "give_up_at": now + pol.retry_for_s,
        "tries": 0,
        "next_try": now,
        "last_error": None,
        "claim": None if claim_for_s is None else {"by": owner(), "until": now + claim_for_s},
    }
    tag = store.create(key_of(delivery_id), dump(doc))
    _wake(store)
    return Delivery(delivery_id, kind, payload, 0, doc, tag, store)


def _ids(store: Store, key: str) -> list[str]:
    return [n[: -len(".json")] for n in store.children(key) if n.endswith(".json")]


def pending_ids(store: Store) -> list[str]:
    """Every delivery not yet sent nor dead, oldest first."""
    return _ids(store, OUTBOX)


def dead_ids(store: Store) -> list[str]:
    return _ids(store, DEAD)


def outbox_depth(store: Store) -> dict[str, int]:
    """``{"pending": N, "dead": M}``: deliveries waiting (or in flight) and dead letters
    (for health and ``/metrics``). Two listings, no document read."""
    return {"pending": len(pending_ids(store)), "dead": len(dead_ids(store))}


def read(store: Store, delivery_id: str, *, dead: bool = False) -> dict[str, Any] | None:
    """One delivery's document (None when gone or unreadable)."""
    try:
        doc = json.loads(store.read(key_of(delivery_id, dead)))
    except (Missing, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def claim(
    store: Store, delivery_id: str, policy: Policy, *, due_only: bool = True
) -> Delivery | None:
    """Claim a delivery for one try, or None: gone, not due (``due_only``), claimed by a
    live sender, of a kind this process cannot send, or taken by another sender first."""
    key = key_of(delivery_id)
    now = time.time()
    with _guard(store):
        try:
            tagged = store.read_tagged(key)
            doc = json.loads(tagged.data)
        except (Missing, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return None
        spec = sender(str(doc.get("kind")))
        held = doc.get("claim") or {}
        if spec is None or (held and held.get("until", 0) > now and held.get("by") != owner()):
            return None
        if doc.get("dead"):  # a move to dead/ that its sender did not finish
            bury(store, delivery_id, doc)
            return None
        if due_only and float(doc.get("next_try", 0)) > now:
            return None
        until = now + spec.try_s(doc["payload"]) + policy.claim_s
        doc["claim"] = {"by": owner(), "until": until}
        try:
            tag = store.replace(key, dump(doc), if_match=tagged.tag)
        except (Conflict, Missing):
            return None
    return Delivery(delivery_id, doc["kind"], doc["payload"], int(doc["tries"]), doc, tag, store)


def bury(store: Store, delivery_id: str, doc: dict[str, Any]) -> None:
    with contextlib.suppress(AlreadyExists):
        store.create(key_of(delivery_id, dead=True), dump(doc))
    store.delete(key_of(delivery_id))


@dataclass
class Outcome:
    """What :func:`attempt` did: ``status`` is ``sent``, ``pending`` (to be retried at
    ``next_try``), ``dead``, or ``lost`` (another sender took the claim over)."""

    status: str
    tries: int
    problem: str | None = None
    next_try: float | None = None


def attempt(
    delivery: Delivery,
    policy: Policy,
    *,
    tries: int = 1,
    sleep: Callable[[float], None] = time.sleep,
    deadline: float | None = None,
) -> Outcome:
    """Up to ``tries`` tries of a claimed delivery, waiting the back-off between them
    (the claim must cover them), then :func:`finish`. Never raises for a sender's fault."""
    from registry_cli.net.retry import WEBHOOK  # the first waits: docs/events.md's 3 tries

    spec = sender(delivery.kind)
    if spec is None:
        return Outcome("lost", 0, f"no sender of {delivery.kind!r} in this process")
    problem: str | None = None
    permanent = False
    made = 0
    for n in range(max(1, tries)):
        if n:
            wait = WEBHOOK.delay(delivery.tries + n)
            if deadline is not None and time.monotonic() + wait > deadline:
                break
            sleep(wait)
        made += 1
        try:
            spec.send(delivery)
        except GiveUp as exc:
            problem, permanent = str(exc) or "refused", True
            break
        except Retry as exc:
            problem = str(exc) or "failed"
        except Exception as exc:  # a sender's bug must not stop the outbox
            problem = f"{type(exc).__name__}: {exc}"
        else:
            problem = None
            break
    return finish(delivery, policy, made, problem, permanent=permanent)


def finish(
    delivery: Delivery, policy: Policy, made: int, problem: str | None, *, permanent: bool = False
) -> Outcome:
    """Record ``made`` tries ending in ``problem`` (None: sent)."""
    store = delivery.store
    if problem is None:
        if store is not None:
            store.delete(key_of(delivery.id))
        return Outcome("sent", made)
    now = time.time()
    doc = dict(delivery.doc, claim=None, last_error=problem)
    doc["tries"] = delivery.tries + made
    dead = permanent or now >= float(doc.get("give_up_at", 0))
    if dead:
        doc["dead"] = {
            "at": now,
            "reason": problem if permanent else f"still failing after retry_for_h: {problem}",
        }
    else:
        doc["next_try"] = now + policy.delay(doc["tries"])
    if store is None:
        return Outcome("dead" if dead else "pending", made, problem, doc.get("next_try"))
    try:
        with _guard(store):
            delivery.tag = store.replace(key_of(delivery.id), dump(doc), if_match=delivery.tag)
    except (Conflict, Missing):
        return Outcome("lost", made, problem)
    delivery.doc = doc
    if dead:
        bury(store, delivery.id, doc)
        return Outcome("dead", made, problem)
    return Outcome("pending", made, problem, doc["next_try"])


# ------------------------------------------------------------------ a background sender
_WAKERS: dict[str, Callable[[], None]] = {}
_WAKERS_LOCK = threading.Lock()


def set_background(store: Store, wake: Callable[[], None] | None) -> None:
    """A background sender runs in this process for ``store`` (``wake`` hurries it), or
    no longer (None). While one runs, changes leave their deliveries to it."""
    with _WAKERS_LOCK:
        if wake is None:
            _WAKERS.pop(store.location, None)
        else:
            _WAKERS[store.location] = wake


def has_background(store: Store) -> bool:
    return store.location in _WAKERS


def _wake(store: Store) -> None:
    wake = _WAKERS.get(store.location)
    if wake is not None:
        wake()
