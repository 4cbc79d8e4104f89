"""Start ``regctl serve-registry`` as a subprocess and wait until it accepts
connections: the launcher used by the tests and the benchmark.

    with ServeRegistryProcess(root, "--max-upload-size", "1MiB", log=Path("srv.log")) as srv:
        srv.url ...   # http://127.0.0.1:PORT, the port the server picked itself (--port 0)

Output goes to ``log``; the server is stopped by its own handle (SIGTERM to
that process only, then SIGKILL after ``timeout``).
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
from typing import IO

READY_RE = re.compile(r"serving .* on (https?)://(\[[^\]]+\]|[^:/\s]+):(\d+)")


class ServeRegistryProcess:
    """A running ``regctl --root ROOT serve-registry --host HOST --port 0 ARGS...``."""

    def __init__(
        self,
        root: Path,
        *args: str,
        log: Path,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 60.0,
    ) -> None:
        self.root = root
        self.args = list(args)
        self.log_path = log
        self.env = dict(os.environ, **(env or {}))
        self.host = host
        self.port = 0
        self.scheme = "http"
        self.start_timeout = start_timeout
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
            "serve-registry",
            "--host",
            self.host,
            "--port",
            "0",
            *self.args,
        ]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> ServeRegistryProcess:
        """Start the server; RuntimeError (with its log) if it exits or is not ready in time."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()
                self.returncode = self.proc.returncode
                raise RuntimeError(
                    f"serve-registry exited with {self.proc.returncode}:\n{self.log}"
                )
            found = READY_RE.search(self.log)
            if found:
                self.scheme, self.port = found.group(1), int(found.group(3))
                if self._accepts():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"serve-registry did not start in time:\n{self.log}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the server and wait for it to exit; its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
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

    def __enter__(self) -> ServeRegistryProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
