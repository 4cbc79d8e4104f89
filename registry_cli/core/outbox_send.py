"""Sending what the outbox holds (see docs/events.md and ``core/outbox.py``): one pass
(``regctl events flush``), or :class:`OutboxSender`, the background thread every
``serve-registry`` runs.

A pass reads the pending deliveries, groups them by lane (a webhook's URL), and sends
each lane's deliveries one after another in creation order, the lanes side by side
(a hanging receiver holds its own lane only). Each delivery is claimed before its try
(one try per claim) and its outcome recorded at once, so a killed sender loses at most
the try in flight: its claim expires and another sender (or itself, restarted) takes
the delivery over.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from registry_cli.core import (
    events,  # registers the sender of webhook deliveries
    outbox,
)
from registry_cli.storage.store import AlreadyExists, Store

MAX_LANES = 8  # lanes sent at the same time by one process
Log = Callable[[str], None]


@dataclass
class FlushReport:
    """What one pass did, and what the outbox holds afterwards."""

    sent: int = 0
    failed: int = 0  # tries that failed; those deliveries wait for their next try
    dead: int = 0  # deliveries that became dead letters in this pass
    requeued: int = 0  # dead letters given a new retry period (``flush --dead``)
    pending: int = 0
    dead_letters: int = 0

    def to_doc(self) -> dict[str, int]:
        return dict(vars(self))


def requeue_dead(store: Store, policy: outbox.Policy) -> int:
    """Give every dead letter a new ``retry_for_h`` and send it again (``--dead``)."""
    count = 0
    now = time.time()
    for delivery_id in outbox.dead_ids(store):
        doc = outbox.read(store, delivery_id, dead=True)
        if doc is None:
            continue
        doc.pop("dead", None)
        doc.update(claim=None, next_try=now, give_up_at=now + policy.retry_for_s)
        with contextlib.suppress(AlreadyExists):
            store.create(outbox.key_of(delivery_id), outbox.dump(doc))
        store.delete(outbox.key_of(delivery_id, dead=True))
        count += 1
    return count


class _Pass:
    """The lanes of one pass: which deliveries, in which order, and their outcomes."""

    def __init__(self, store: Store, policy: outbox.Policy, log: Log) -> None:
        self.store, self.policy, self.log = store, policy, log
        self.report = FlushReport()
        self.lock = threading.Lock()

    def lanes(self, *, due_only: bool, skip: dict[str, float]) -> dict[str, list[str]]:
        """Pending deliveries this process can send now, by lane, oldest first."""
        now = time.time()
        out: dict[str, list[str]] = defaultdict(list)
        for delivery_id in outbox.pending_ids(self.store):
            if skip.get(delivery_id, 0) > now:
                continue
            doc = outbox.read(self.store, delivery_id)
            spec = outbox.sender(str(doc.get("kind"))) if doc else None
            if doc is None or spec is None:
                continue  # gone, unreadable, or a kind this process does not know
            held = doc.get("claim") or {}
            busy_until = float(held.get("until", 0)) if held.get("by") != outbox.owner() else 0
            wait_until = max(busy_until, float(doc.get("next_try", 0)) if due_only else 0.0)
            if wait_until > now and not doc.get("dead"):
                skip[delivery_id] = wait_until  # no need to read it again before then
                continue
            try:
                out[spec.lane(doc["payload"])].append(delivery_id)
            except Exception:  # a payload its sender cannot place: leave it
                continue
        return out

    def send_lane(
        self,
        ids: list[str],
        *,
        due_only: bool,
        deadline: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        for delivery_id in ids:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if stop is not None and stop.is_set():
                return  # the server is stopping: its last pass takes over
            try:
                delivery = outbox.claim(self.store, delivery_id, self.policy, due_only=due_only)
                if delivery is None:
                    continue
                outcome = outbox.attempt(delivery, self.policy, deadline=deadline)
            except Exception as exc:  # the store failed: the next pass tries again
                self.log(f"outbox: delivery {delivery_id} not sent: {type(exc).__name__}: {exc}")
                continue
            self._note(delivery, outcome)

    def _note(self, delivery: outbox.Delivery, outcome: outbox.Outcome) -> None:
        spec = outbox.sender(delivery.kind)
        what = spec.describe(delivery.payload) if spec else delivery.kind
        with self.lock:
            if outcome.status == "sent":
                self.report.sent += 1
            elif outcome.status == "dead":
                self.report.dead += 1
                self.log(
                    f"{what} delivery {delivery.id} is a dead letter after "
                    f"{delivery.tries + outcome.tries} tries: {outcome.problem}"
                )
            elif outcome.status == "pending":
                self.report.failed += 1
                wait = max(0.0, (outcome.next_try or 0) - time.time())
                self.log(
                    f"{what} delivery {delivery.id} failed (try {delivery.tries + 1}): "
                    f"{outcome.problem}; next try in {wait:.1f} s"
                )


def flush(
    store: Store,
    policy: outbox.Policy,
    *,
    include_dead: bool = False,
    log: Log = events.warn,
) -> FlushReport:
    """Try every pending delivery once now, back-off or not (claims of live senders are
    respected); with ``include_dead``, the dead letters too."""
    requeued = requeue_dead(store, policy) if include_dead else 0
    work = _Pass(store, policy, log)
    lanes = list(work.lanes(due_only=False, skip={}).values())
    for start in range(0, len(lanes), MAX_LANES):  # at most MAX_LANES side by side
        threads = [
            _lane_thread(work.send_lane, ids, due_only=False) for ids in lanes[start:][:MAX_LANES]
        ]
        for t in threads:
            t.join()
    work.report.requeued = requeued
    depth = outbox.outbox_depth(store)
    work.report.pending, work.report.dead_letters = depth["pending"], depth["dead"]
    return work.report


def _lane_thread(target: Callable[..., None], ids: list[str], **kw: object) -> threading.Thread:
    """A daemon thread for one lane: a try hanging at exit does not hold the process (its
    claim expires and another sender takes the delivery over)."""
    thread = threading.Thread(target=target, args=(ids,), kwargs=kw, daemon=True)
    thread.name = "regctl-outbox-lane"
    thread.start()
    return thread


class OutboxSender:
    """Sends the outbox of ``store`` in the background: a pass every ``policy.poll_s``
    seconds, or at once when a change of this process records a delivery."""

    def __init__(self, store: Store, policy: outbox.Policy, log: Log = events.warn) -> None:
        self.store, self.policy, self.log = store, policy, log
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._skip: dict[str, float] = {}
        self._busy: dict[str, threading.Thread] = {}
        self._thread = threading.Thread(target=self._run, name="regctl-outbox", daemon=True)

    def start(self) -> OutboxSender:
        outbox.set_background(self.store, self._wake.set)
        self._thread.start()
        return self

    def stop(self, drain_s: float = 10.0) -> None:
        """Stop polling; within ``drain_s``, let the tries in flight end and make one
        last pass of what is due. A try still running then is abandoned with the
        process: its delivery stays in the outbox, claimed until the claim expires."""
        outbox.set_background(self.store, None)
        deadline = time.monotonic() + drain_s
        self._stop.set()
        self._wake.set()
        self._thread.join()
        for thread in list(self._busy.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._pass(deadline=deadline)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self._pass(deadline=None)
            self._wake.wait(self.policy.poll_s)

    def _pass(self, deadline: float | None) -> None:
        work = _Pass(self.store, self.policy, self.log)
        try:
            lanes = work.lanes(due_only=True, skip=self._skip)
        except Exception as exc:  # the store is unreachable: try again next time
            self.log(f"outbox: cannot read {self.store.location}: {type(exc).__name__}: {exc}")
            return
        now = time.time()
        self._skip = {k: v for k, v in self._skip.items() if v > now}
        self._busy = {k: t for k, t in self._busy.items() if t.is_alive()}
        for lane, ids in lanes.items():
            if lane in self._busy or len(self._busy) >= MAX_LANES:
                continue  # still sending that lane's last pass (a slow receiver), or full
            self._busy[lane] = _lane_thread(
                work.send_lane,
                ids,
                due_only=True,
                deadline=deadline,
                stop=self._stop if deadline is None else None,
            )
        if deadline is not None:  # the last pass: wait for it, within the deadline
            for thread in list(self._busy.values()):
                thread.join(max(0.0, deadline - time.monotonic()))
