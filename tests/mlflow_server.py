"""A real ``mlflow server`` on 127.0.0.1, for the tests (``conftest.mlflow_server``)
and the import benchmark (``bench/bench_import.py``).

    with MlflowServer(base) as uri:   # http://127.0.0.1:PORT once /health answers 200
        ...

SQLite backend store and a proxied artifact store, both under ``base``, one worker,
its output in ``base/server.log``. It runs in a process group of its own, and is
stopped by that group (its uvicorn and job workers): SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, base: Path, *, start_timeout: float = 180.0) -> None:
        self.base = base
        self.port = free_loopback_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "server.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def _tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def start(self) -> str:
        """Start the server and wait for ``/health``; its URI. RuntimeError (with the end
        of its log) if it exits or does not answer in time; it is stopped then."""
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.base / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.base / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = dict(os.environ, HOME=str(self.base), MLFLOW_TRACKING_URI="")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"mlflow server exited with {self.proc.returncode}:\n{self._tail()}"
                    )
                try:
                    with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                        if resp.status == 200:
                            return self.uri
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not answer /health within "
                        f"{self.start_timeout:g} s:\n{self._tail()}"
                    )
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server's whole process group (uvicorn and job workers)."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):  # workers slower than the leader
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
