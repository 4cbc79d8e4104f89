"""What one server counts, and ``GET /metrics`` in Prometheus' text format (see
docs/operations.md, "Prometheus").

:class:`Metrics` holds one ``prometheus_client`` registry per app (never the global
default, so two apps in one process do not mix their counts). :class:`Observe` is the
ASGI middleware that counts every HTTP request by method, route TEMPLATE (the path
as declared, ``/api/v1/models/{name:modelname}/-/versions``: never the raw path, so
the labels stay bounded) and status, times it, counts the body bytes of publishes,
the changes answered 2xx and the fleet reports accepted, and hands each finished
request to an access logger (``server/logging_json.py``). Conditional writes that
lost a race (the writer then retries) are counted on the server's store.

``prometheus_client`` is imported only here, by the server: never on the CLI's
start-up path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from registry_cli.server.auth import Principal, require
from registry_cli.storage.store import AlreadyExists, Conflict, Store

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED = "<unmatched>"  # every path no route declares: one label, whatever was asked
CHANGES = frozenset({"POST", "PUT", "DELETE", "PATCH"})
FLEET_REPORTS = "/api/v1/fleet/reports"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def outbox_depth(store: Store) -> dict[str, int]:
    """``{"pending": N, "dead": N}`` of the root's outbox of deliveries (docs/events.md)."""
    from registry_cli.core.outbox import outbox_depth as depth

    return depth(store)


@dataclass(frozen=True)
class Finished:
    """One answered request, as the access log sees it."""

    method: str
    route: str
    path: str
    query: str
    status: int
    seconds: float
    bytes_in: int
    client: str


class _Outbox(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "regctl_outbox_depth", "Deliveries waiting in the root's outbox", labels=["state"]
        )
        for state, count in outbox_depth(self.store).items():
            gauge.add_metric([state], count)
        yield gauge


class Metrics:
    """The counters of one app."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "regctl_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "regctl_http_request_duration_seconds",
            "Time to answer a request (the whole body sent)",
            ["method", "route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.upload_bytes = Counter(
            "regctl_upload_bytes", "Body bytes received by publishes", registry=r
        )
        self.commits = Counter(
            "regctl_commits",
            "Changes answered 2xx (publish, promote, tags...)",
            ["route"],
            registry=r,
        )
        self.conflicts = Counter(
            "regctl_conflicts_retried",
            "Conditional writes that lost a race to another writer, then retried",
            registry=r,
        )
        self.fleet_reports = Counter(
            "regctl_fleet_reports", "Fleet report requests accepted", registry=r
        )
        r.register(_Outbox(store))
        count_conflicts(store, self.conflicts)

    def finished(self, done: Finished) -> None:
        self.requests.labels(done.method, done.route, str(done.status)).inc()
        self.latency.labels(done.method, done.route).observe(done.seconds)
        ok = 200 <= done.status < 300
        if done.method == "POST" and done.route.endswith("/-/versions"):
            self.upload_bytes.inc(done.bytes_in)
        if ok and done.method in CHANGES:
            self.commits.labels(done.route).inc()
            if done.route == FLEET_REPORTS:
                self.fleet_reports.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def count_conflicts(store: Store, counter: Counter) -> None:
    """Count each ``create``/``replace`` of ``store`` refused because another writer got
    there first (the callers retry on those). Wraps the two methods of this one store."""
    for name in ("create", "replace"):
        original = getattr(store, name)

        def counted(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            try:
                return __original(*args, **kwargs)
            except (AlreadyExists, Conflict):
                counter.inc()
                raise

        setattr(store, name, counted)


def route_of(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class Observe:
    """ASGI middleware: every HTTP request counted, timed and logged once answered."""

    def __init__(
        self, app: Any, metrics: Metrics, log: Callable[[Finished], None] | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]  # what a request that ends in an exception before its reply counts as
        received = [0]

        async def counting_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
            return message

        async def noting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, counting_receive, noting_send)
        finally:
            method = scope.get("method", "GET")
            client = scope.get("client") or ("", 0)
            done = Finished(
                method=method if method in METHODS else "OTHER",
                route=route_of(scope),
                path=scope.get("path", ""),
                query=(scope.get("query_string") or b"").decode("latin-1"),
                status=status[0],
                seconds=time.perf_counter() - start,
                bytes_in=received[0],
                client=str(client[0]),
            )
            self.metrics.finished(done)
            if self.log is not None:
                self.log(done)


router = APIRouter()


@router.get("/metrics", tags=["read"], include_in_schema=False)
def metrics(request: Request, who: Principal = Depends(require("read"))) -> Response:
    """The server's counters in Prometheus' text format (token with ``read``)."""
    body = request.app.state.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
