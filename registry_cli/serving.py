"""What every ``regctl serve-*`` server shares, on both of its sides:

- ``bind``: the server opens its listening socket itself, so a busy port is one
  clean error (exit 2) rather than a traceback from uvicorn or pyftpdlib;
- ``ServeProcess``: a launcher that starts ``regctl serve-*`` as a subprocess and
  waits for its ready line, used by the tests, the benchmarks and the demo.
  ``registry_cli/ftp/launch.py`` and ``registry_cli/server/launch.py`` say which
  command and which ready line.

The server's output goes to ``log``; it is stopped by its own handle (SIGTERM to
that process only, then SIGKILL after ``timeout``). Pure stdlib.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, ClassVar, Self

from registry_cli.errors import BadInput


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


class ServeProcess:
    """A running ``regctl --root ROOT <command> --host HOST --port 0 ARGS...``.

    A subclass names ``command``, the ``ready_re`` its server prints once it
    listens, and reads the port (and whatever else) from that line in ``_ready``.
    """

    command: ClassVar[str]
    ready_re: ClassVar[re.Pattern[str]]
    start_timeout_default: ClassVar[float] = 30.0
    stop_timeout_default: ClassVar[float] = 15.0
    pass_fds: tuple[int, ...] = ()  # file descriptors the child inherits (besides 0-2)

    def __init__(
        self,
        root: Path,
        *args: str,
        log: Path,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        start_timeout: float | None = None,
    ) -> None:
        self.root = root
        self.args = list(args)
        self.log_path = log
        self.env = dict(os.environ, **(env or {}))
        self.host = host
        self.port = 0
        self.start_timeout = self.start_timeout_default if start_timeout is None else start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._log: IO[bytes] | None = None

    @property
    def cmd(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "registry_cli",
            "--root",
            str(self.root),
            self.command,
            "--host",
            self.host,
            "--port",
            "0",
            *self.args,
        ]

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _ready(self, found: re.Match[str]) -> None:
        """Take what the ready line says (at least ``self.port``)."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the server; RuntimeError (with its log) if it exits or is not ready in time."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            pass_fds=self.pass_fds,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()
                self.returncode = self.proc.returncode
                raise RuntimeError(
                    f"{self.command} exited with {self.proc.returncode}:\n{self.log}"
                )
            found = self.ready_re.search(self.log)
            if found:
                self._ready(found)
                if self._accepts():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.command} did not start in time:\n{self.log}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int:
        """Signal the server and wait for it to exit; its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(self.stop_timeout_default if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()
        self.returncode = self.proc.returncode
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
