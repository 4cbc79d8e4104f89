"""A webhook receiver for the outbox tests whose answers the test switches as it goes
(answer, refuse, fail with 503, or hang until released), and the config they share."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.http_receiver import PostReceiver

SECRET = "outbox-secret-51c2"


class SwitchReceiver(PostReceiver):
    """Records every POST; ``mode`` is ``ok`` (200), ``503``, ``400`` or ``hang`` (holds
    the request until :meth:`release`; the reply is then 200)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.answered: list[int] = []
        self.released = threading.Event()
        self.lock = threading.Lock()
        super().__init__()

    def answer(self, path, headers, body):
        with self.lock:
            self.calls.append((path, headers, body))
            mode = self.mode
        if mode == "hang":
            self.released.wait(120)
            status = 200
        else:
            status = {"ok": 200, "503": 503, "400": 400}[mode]
        with self.lock:
            self.answered.append(status)
        return status, {}

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        super().close()

    def ids(self) -> list[str]:
        with self.lock:
            return [h["X-Regctl-Delivery"] for _p, h, _b in self.calls]

    def bodies(self) -> list[dict]:
        with self.lock:
            return [json.loads(b) for _p, _h, b in self.calls]

    def signed(self) -> bool:
        """Every POST carries the signature of its body with :data:`SECRET`."""
        with self.lock:
            calls = list(self.calls)
        for _p, headers, body in calls:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, headers["X-Regctl-Signature"]):
                return False
        return bool(calls)


def config_text(
    url: str,
    *,
    events: dict | None = None,
    on: str = "[publish, promote, rollback, archive, alias, tag]",
    **hook: object,
) -> str:
    """registry.yaml with one webhook to ``url`` for every event, and ``events:`` keys."""
    lines = [
        "format_version: 1",
        "webhooks:",
        f"  - url: {url}",
        f"    events: {on}",
        "    secret_env: HOOK_SECRET",
    ]
    lines += [f"    {k}: {v}" for k, v in hook.items()]
    if events:
        lines.append("events:")
        lines += [f"  {k}: {v}" for k, v in events.items()]
    return "\n".join(lines) + "\n"


def write_config(root: Path, text: str) -> None:
    if hasattr(root, "mkdir"):
        root.mkdir(parents=True, exist_ok=True)
    (root / "registry.yaml").write_text(text)


def wait_for(what: str, check: Callable[[], object], timeout: float = 60.0) -> object:
    """Poll ``check`` until it is truthy (a bound on waiting, not an assertion on time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")
