"""The one retry policy (registry_cli.net.retry): which errors retry, the caps, the jitter
bounds, giving up after N tries; and that webhooks, remote calls, pulls over HTTP and S3
conflict retries all go through it (a receiver that fails twice then succeeds gets 3 tries)."""

from __future__ import annotations

import http.client
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry_cli.core import events
from registry_cli.core.webhooks import Webhook
from registry_cli.errors import RemoteError
from registry_cli.net import retry
from registry_cli.net.retry import RetryPolicy, is_transport_error, retryable_status
from registry_cli.pull.http import HttpTransport
from registry_cli.pull.sources import Source
from registry_cli.remote.registry import RemoteRegistry
from registry_cli.storage import s3_client
from tests.http_receiver import PostReceiver, free_port


# ------------------------------------------------------------------ the policy itself
def test_delays_double_from_the_base_up_to_the_cap():
    p = RetryPolicy(tries=10, base_s=0.5, cap_s=4.0, jitter=0.5)
    assert [p.delay(n, rand=lambda: 0.0) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]


@pytest.mark.parametrize("n", range(1, 12))
def test_jitter_stays_within_its_bounds(n):
    p = RetryPolicy(tries=12, base_s=0.1, cap_s=2.0, jitter=0.5)
    ceiling = min(2.0, 0.1 * 2 ** (n - 1))
    assert p.delay(n, rand=lambda: 0.0) == pytest.approx(ceiling)
    assert p.delay(n, rand=lambda: 0.999999) == pytest.approx(ceiling * 0.5, rel=1e-4)
    for _ in range(200):
        assert ceiling * 0.5 <= p.delay(n) <= ceiling


def test_full_jitter_may_wait_nothing():
    assert RetryPolicy(jitter=1.0).delay(1, rand=lambda: 1.0) == 0.0


def test_gives_up_after_n_tries_with_the_last_error():
    waits: list[float] = []
    calls = []

    def call():
        calls.append(1)
        raise ConnectionRefusedError(f"refused {len(calls)}")

    with pytest.raises(ConnectionRefusedError, match="refused 4"):
        RetryPolicy(tries=4, base_s=1, cap_s=2, jitter=0).run(call, sleep=waits.append)
    assert len(calls) == 4
    assert waits == [1, 2, 2]


def test_succeeds_on_the_third_try():
    outcomes = iter([TimeoutError("t"), http.client.RemoteDisconnected("r"), "ok"])

    def call():
        got = next(outcomes)
        if isinstance(got, Exception):
            raise got
        return got

    assert RetryPolicy(tries=3).run(call, sleep=lambda s: None) == "ok"


@pytest.mark.parametrize(
    "exc, retried",
    [
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (http.client.IncompleteRead(b""), True),
        (http.client.RemoteDisconnected(), True),
        (ssl.SSLCertVerificationError("bad cert"), False),
        (ValueError("bad"), False),
        (RemoteError("refused"), False),
        (KeyError("x"), False),
    ],
)
def test_which_errors_retry(exc, retried):
    assert is_transport_error(exc) is retried
    calls = []

    def call():
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)):
        RetryPolicy(tries=3).run(call, sleep=lambda s: None)
    assert len(calls) == (3 if retried else 1)


def test_which_statuses_retry():
    assert {s for s in range(100, 600) if retryable_status(s)} == {408, 429, 500, 502, 503, 504}


def test_bad_policies_are_refused():
    for bad in ({"tries": 0}, {"base_s": -1}, {"jitter": 1.5}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


# ------------------------------------------------------------------ everyone uses it
@pytest.fixture
def waits(monkeypatch) -> list[tuple[RetryPolicy, int]]:
    """Every back-off any caller asks of a RetryPolicy (answered with no wait)."""
    asked: list[tuple[RetryPolicy, int]] = []

    def delay(self, n, rand=None):
        asked.append((self, n))
        return 0.0

    monkeypatch.setattr(RetryPolicy, "delay", delay)
    return asked


class Flaky:
    """A real HTTP server on loopback: the first ``fail`` requests get ``status``, then
    200 with ``body``; it counts requests per method."""

    def __init__(self, fail: int, status: int = 503, body: bytes = b'{"status": "ok"}'):
        self.fail, self.status, self.body = fail, status, body
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.seen.append(self.command)
                failing = len(outer.seen) <= outer.fail
                body = b'{"error": "busy"}' if failing else outer.body
                self.send_response(outer.status if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Flaky:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class FailsTwice(PostReceiver):
    def __init__(self) -> None:
        self.tries = 0
        super().__init__()

    def answer(self, path, headers, body):
        self.tries += 1
        return (503 if self.tries <= 2 else 200), {}


def test_a_webhook_receiver_that_fails_twice_gets_three_tries(waits, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s")
    receiver = FailsTwice()
    try:
        hook = Webhook(
            url=f"{receiver.url}/h", events=frozenset({"publish"}), secret_env="HOOK_SECRET"
        )
        assert events.deliver(hook, "publish", b"{}") is True
    finally:
        receiver.close()
    assert receiver.tries == 3
    assert [n for _p, n in waits] == [1, 2]
    assert {(p.base_s, p.cap_s, p.jitter) for p, _n in waits} == {
        (retry.WEBHOOK.base_s, retry.WEBHOOK.cap_s, retry.WEBHOOK.jitter)
    }


def test_a_remote_read_is_retried_and_a_change_is_not_sent_twice(waits):
    with Flaky(fail=2) as server:
        assert RemoteRegistry(server.url).health() == {"status": "ok"}
        assert server.seen == ["GET"] * 3
    assert [(p, n) for p, n in waits] == [(retry.HTTP, 1), (retry.HTTP, 2)]
    with Flaky(fail=5, status=503) as server:
        with pytest.raises(RemoteError):
            RemoteRegistry(server.url).promote("m", version="v1")
        assert server.seen == ["POST"]  # a change that reached the server: once only


def test_a_remote_read_gives_up_after_the_policys_tries(waits):
    with Flaky(fail=99) as server:
        with pytest.raises(RemoteError):
            RemoteRegistry(server.url).health()
        assert len(server.seen) == retry.HTTP.tries


def test_a_refused_connection_is_retried_then_one_line_error(waits):
    with pytest.raises(RemoteError, match="cannot reach"):
        RemoteRegistry(f"http://127.0.0.1:{free_port()}").health()
    assert [n for _p, n in waits] == list(range(1, retry.HTTP.tries))


def test_a_pull_over_http_retries_a_busy_server(waits):
    with Flaky(fail=2, body=b"hello") as server:
        source = Source(kind="http", host="127.0.0.1", port=server.port, base="/")
        transport = HttpTransport(source, tree_base="")
        try:
            assert transport.read_small("x.json", 100) == b"hello"
        finally:
            transport.close()
        assert server.seen == ["GET"] * 3
    assert [(p, n) for p, n in waits] == [(retry.HTTP, 1), (retry.HTTP, 2)]


def test_s3_conflicts_back_off_with_the_policy(waits):
    class Conflict(Exception):
        response = {
            "Error": {"Code": "ConditionalRequestConflict"},
            "ResponseMetadata": {"HTTPStatusCode": 409},
        }

    calls = []

    def put():
        calls.append(1)
        if len(calls) < 3:
            raise Conflict()
        return "done"

    assert s3_client.with_conflict_retry(put) == "done"
    assert [n for _p, n in waits] == [1, 2]
    assert {(p.base_s, p.cap_s) for p, _n in waits} == {
        (retry.S3_CONFLICT.base_s, retry.S3_CONFLICT.cap_s)
    }


def test_the_commit_loop_gives_up_after_the_commit_policys_tries():
    from registry_cli.core import models

    assert models.MAX_ATTEMPTS == retry.COMMIT.tries


def test_the_http_helper_keeps_one_connection_alive_and_resends_on_a_stale_one():
    from registry_cli.net.http import Endpoint, HttpClient

    with Flaky(fail=0, body=b"x") as server:
        ports: list[int] = []
        drop_after: list[int] = []
        base_handler = server.httpd.RequestHandlerClass

        class Recording(base_handler):  # type: ignore[misc, valid-type]
            def _answer(self) -> None:
                ports.append(self.client_address[1])
                super()._answer()
                if len(ports) in drop_after:
                    self.close_connection = True  # silently: no "Connection: close"

            do_GET = _answer  # noqa: N815

        server.httpd.RequestHandlerClass = Recording
        client = HttpClient(Endpoint(server.url), timeout=10)
        for _ in range(3):
            reply = client.request("GET", "/a")
            assert reply.status == 200 and reply.read() == b"x"
        assert len(set(ports)) == 1  # one keep-alive connection
        drop_after.append(4)
        for _ in range(2):
            reply = client.request("GET", "/a")
            assert reply.status == 200 and reply.read() == b"x"
        client.close()
    assert len(ports) == 5 and len(set(ports)) == 2  # the dropped one was replaced once
