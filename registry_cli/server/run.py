"""Running the server: bind, start uvicorn, print one ready line, stop on SIGTERM/Ctrl-C."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput
from registry_cli.server.context import ServerContext

log = logging.getLogger("uvicorn.error")


def bind(host: str, port: int) -> socket.socket:
    """Open the listening socket ourselves so a busy port is a clean error (exit 2)."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, socket.gaierror) as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise BadInput(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (or stop what holds it)",
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(
    ctx: ServerContext,
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve until SIGTERM or Ctrl-C; prints ``serving ... on URL`` once it accepts."""
    import uvicorn

    from registry_cli.server.app import create_app

    if bool(tls_cert) != bool(tls_key):
        raise BadInput("give both --tls-cert and --tls-key, or neither")
    for path in (tls_cert, tls_key):
        if path is not None and not Path(path).is_file():
            raise BadInput(f"TLS file {path} does not exist")
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"{'https' if tls_cert else 'http'}://{shown}:{bound_port}"
    config = uvicorn.Config(
        create_app(ctx),
        log_level="info",
        access_log=True,
        timeout_graceful_shutdown=10,
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

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                sys.stdout.write(f"regctl serve-registry: serving {ctx.root} on {url}\n")
                sys.stdout.flush()

    server = ReadyServer(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
