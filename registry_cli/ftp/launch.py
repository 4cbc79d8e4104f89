"""Start ``regctl serve-ftp`` as a subprocess and wait until it accepts connections:
the one launcher used by the tests, the benchmark and the demo.

    with ServeFtpProcess(root, "--user", "mlops", "--password-env", "PW",
                         env={"PW": secret}, log=Path("serve-ftp.log")) as srv:
        srv.port ...   # the port the server picked itself (--port 0)

The server's output goes to ``log``; it is stopped by its own handle (SIGTERM
to that process only, then SIGKILL after ``timeout``).
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

LISTENING_RE = re.compile(r"listening on ([0-9.]+):(\d+)")


class ServeFtpProcess:
    """A running ``regctl --root ROOT serve-ftp --host HOST --port 0 ARGS...``."""

    def __init__(
        self,
        root: Path,
        *args: str,
        log: Path,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 30.0,
    ) -> None:
        self.root = root
        self.args = list(args)
        self.log_path = log
        self.env = dict(os.environ, **(env or {}))
        self.host = host
        self.port = 0
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def cmd(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "registry_cli",
            "--root",
            str(self.root),
            "serve-ftp",
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

    def start(self) -> ServeFtpProcess:
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
                raise RuntimeError(f"serve-ftp exited with {self.proc.returncode}:\n{self.log}")
            found = LISTENING_RE.search(self.log)
            if found:
                self.port = int(found.group(2))
                if self._accepts():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"serve-ftp did not start in time:\n{self.log}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the server, wait for it to exit; its exit code."""
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
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServeFtpProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
