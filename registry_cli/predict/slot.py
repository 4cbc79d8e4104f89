"""The served model of ``regctl serve``: one reference, swapped only for a complete model.

A request reads :attr:`ModelSlot.current` once, so requests in flight finish on
the model they started with; loads (start-up retries, ``/reload``, ``--follow``)
run one at a time under a lock that readers never take.

``follow`` (see docs/events.md) polls which version the alias names every interval (the
model's state only: cheap) and, when it moved, loads the new version in its own
thread and swaps it in. A version that fails to load leaves the old model
serving and ``last_error`` set; it is not tried again until the alias moves
(or a ``/reload``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from registry_cli.predict.loader import LoadedModel

log = logging.getLogger("uvicorn.error")

Loader = Callable[[str], LoadedModel]
"""Loads the version an alias points at now; raises RegctlError when it cannot."""
Resolver = Callable[[str], "str | None"]
"""The version (``"v3"``) an alias points at now, or None when it names none."""


# ----------------------------------------------------------------- model slot
class ModelSlot:
    """The served model behind one reference, replaced only by a complete new model."""

    def __init__(self, load: Loader, alias: str) -> None:
        self._load = load
        self._lock = threading.Lock()  # one load at a time; readers never take it
        self.current: LoadedModel | None = None
        self.wanted_alias = alias
        self.last_error: str | None = None
        self.retrying = False  # the start-up load loop is running

    def load(self, alias: str | None = None) -> LoadedModel:
        """Load ``alias`` (default: the wanted one), then swap; on failure the old model stays."""
        with self._lock:
            return self._load_locked(alias or self.wanted_alias)

    def _load_locked(self, alias: str) -> LoadedModel:
        try:
            model = self._load(alias)
        except Exception as exc:
            self.last_error = str(exc)
            raise
        self.current = model  # the swap: one reference assignment
        self.wanted_alias = alias
        self.last_error = None
        return model

    def retry_until_loaded(
        self, timeout_s: float, interval_s: float, stop: threading.Event
    ) -> bool:
        """Try to load until a model is in (by us or by /reload), the timeout, or ``stop``."""
        self.retrying = True
        try:
            return self._retry(timeout_s, interval_s, stop)
        finally:
            self.retrying = False

    def _retry(self, timeout_s: float, interval_s: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + timeout_s
        while not stop.is_set():
            with self._lock:
                if self.current is not None:
                    return True
                try:
                    model = self._load_locked(self.wanted_alias)
                    log.info("loaded %s:%s (@%s)", model.name, model.version, model.alias)
                    return True
                except Exception as exc:
                    log.warning("model not loaded yet: %s", exc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("gave up loading after %.0f s; POST /reload to try again", timeout_s)
                return False
            stop.wait(min(interval_s, remaining))
        return False

    def follow(self, resolve: Resolver, interval_s: float, stop: threading.Event) -> None:
        """Until ``stop``: every ``interval_s`` swap in the version the alias names now."""
        failed: str | None = None  # the version whose load failed: wait for the alias to move
        while not stop.wait(interval_s):
            if self.retrying:
                continue  # the start-up loop owns the first load
            try:
                failed = self._follow_once(resolve, failed)
            except Exception as exc:  # the thread must survive anything
                log.warning("follow: %s", exc)

    def _follow_once(self, resolve: Resolver, failed: str | None) -> str | None:
        alias = self.wanted_alias
        try:
            wanted = resolve(alias)
        except Exception as exc:  # registry briefly unreadable: try at the next poll
            log.warning("follow: cannot read @%s: %s", alias, exc)
            return failed
        current = self.current
        if wanted is None:  # the alias was removed: keep what we have
            if current is not None:
                self.last_error = (
                    f"follow: @{alias} names no version; still serving {current.version}"
                )
            return None
        if wanted == failed:
            return failed
        if current is not None and (current.version, current.alias) == (wanted, alias):
            return None
        with self._lock:
            if self.wanted_alias != alias:  # a /reload changed the alias meanwhile
                return None
            try:
                model = self._load_locked(alias)
            except Exception as exc:
                kept = f"; still serving {current.version}" if current else ""
                self.last_error = f"follow: cannot load @{alias} ({wanted}): {exc}{kept}"
                log.warning("%s", self.last_error)
                return wanted
        was = current.version if current else "nothing"
        log.info("follow: @%s moved; now serving %s (was %s)", alias, model.version, was)
        return None
