"""Running the server: bind, start uvicorn, print one ready line, stop on SIGTERM/Ctrl-C.

SIGTERM drains (see docs/operations.md, "Drain"): the listening socket closes at once
(new connections are refused), requests in flight run to their end for up to
``server.drain_timeout_s`` seconds, then what is left is cut and the process exits 0.

On glibc the server caps malloc's arenas and trims free heap pages every few seconds
(``server/memory.py``), so that its RSS stays flat over a long run of publishes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput
from registry_cli.server import memory
from registry_cli.server.context import ServerContext
from registry_cli.server.logging_json import event, uvicorn_log_config
from registry_cli.serving import bind

log = logging.getLogger("uvicorn.error")


def serve_app(
    ctx: ServerContext,
    create_app: Callable[[ServerContext], Any],
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve ``create_app(ctx)`` (the composed app: ``registry_cli.httpapp``) until SIGTERM
    or Ctrl-C; prints ``serving ... on URL`` once it accepts."""
    import uvicorn

    if bool(tls_cert) != bool(tls_key):
        raise BadInput("give both --tls-cert and --tls-key, or neither")
    for path in (tls_cert, tls_key):
        if path is not None and not Path(path).is_file():
            raise BadInput(f"TLS file {path} does not exist")
    memory.cap_arenas()  # before uvicorn's threads: each would get an arena of its own
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"{'https' if tls_cert else 'http'}://{shown}:{bound_port}"
    as_json = ctx.log_format == "json"
    from registry_cli.server.upload_receive import http_protocol

    config = uvicorn.Config(
        create_app(ctx),
        http=http_protocol(),  # big socket reads: uploads cost fewer event loop turns
        loop="asyncio",  # the same loop whether or not uvloop is installed (the bench uses it)
        log_level="info",
        log_config=uvicorn_log_config(ctx.log_format),
        access_log=not as_json,
        timeout_graceful_shutdown=math.ceil(ctx.drain_timeout_s),  # whole seconds
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        server_header=False,
    )

    class ReadyServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """SIGTERM/SIGINT stop the server gracefully, and that is a clean exit (0):
            unlike uvicorn's own, the signal is not raised again afterwards."""
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not self.should_exit:
                event("draining", signal=signal.Signals(sig).name, timeout_s=ctx.drain_timeout_s)
            super().handle_exit(sig, frame)

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                sys.stdout.write(f"regctl serve-registry: serving {ctx.root} on {url}\n")
                sys.stdout.flush()
                event("serving", url=url, root=str(ctx.root))

    server = ReadyServer(config)
    trimmer = memory.Trimmer()
    trimmer.start()
    try:
        server.run(sockets=[sock])
    finally:
        trimmer.stop()
        sock.close()
        event("stopped")
