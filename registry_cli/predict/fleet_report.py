"""``regctl serve --report``: the served model reports what runs (docs/fleet.md).

A thread beside the server: when a version is swapped in (the first load, a
``--follow`` swap, a ``/reload``) it reports ``running``; every
``report_interval`` seconds it reports ``healthy`` while the model serves with no
error, ``unhealthy`` (with the error) when a load failed and the old one still
serves, and ``failed`` when nothing could be loaded. Sending, the outbox and
the report file are the :class:`registry_cli.pull.fleet.Reporter`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from registry_cli.predict.slot import ModelSlot

log = logging.getLogger("uvicorn.error")
TICK_S = 0.5  # how often a swap is looked for


def report_loop(
    slot: ModelSlot,
    reporter: Any,
    model: str,
    interval_s: float,
    stop: threading.Event,
) -> None:
    """Until ``stop``: report swaps at once, and the health every ``interval_s``."""
    reported: Any = None  # the LoadedModel last reported as running
    last = 0.0
    while not stop.is_set():
        try:
            current = slot.current
            if current is not None and current is not reported:
                reporter.report(model, current.version, "running", detail=_detail(slot))
                reported, last = current, time.monotonic()
            elif time.monotonic() - last >= interval_s and not slot.retrying:
                last = time.monotonic()
                if current is None:
                    reporter.report(model, None, "failed", detail=slot.last_error or "not loaded")
                elif slot.last_error:
                    reporter.report(model, current.version, "unhealthy", detail=slot.last_error)
                else:
                    reporter.report(model, current.version, "healthy", detail=_detail(slot))
        except Exception as exc:  # the thread must survive anything
            log.warning("fleet report: %s", exc)
        stop.wait(TICK_S)


def _detail(slot: ModelSlot) -> dict[str, Any]:
    return {"alias": slot.wanted_alias}


def start(slot: ModelSlot, reporter: Any, model: str, interval_s: float) -> threading.Event:
    """Start the loop on a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(
        target=report_loop,
        name="regctl-fleet-report",
        daemon=True,
        args=(slot, reporter, model, interval_s, stop),
    ).start()
    return stop
