"""The FTP servers one registry server started: ``regctl serve-ftp`` children serving
this root's ``dist/``, each one a :class:`registry_cli.ftp.launch.ServeFtpProcess`.

Its password reaches a child through an environment variable named on its command
line (``--password-env``), never the value itself, so ``ps`` never shows it, and no
description repeats it. The routes that drive them are in ``ftp_control.py``; the
server context holds one :class:`FtpChildren`.

Children stop with the registry server, even when it is killed by SIGKILL: each one
runs under ``child_guard`` (a parent-death signal on Linux, and a pipe whose write end
only this process holds, watched by the child). Children are started from one
long-lived thread, since the parent-death signal follows the thread that forked.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from registry_cli.errors import BadInput, NotFound
from registry_cli.ftp.launch import ServeFtpProcess
from registry_cli.server import child_guard

PASSWORD_VAR = "REGCTL_FTP_PASSWORD"


class GuardedFtpProcess(ServeFtpProcess):
    """``regctl serve-ftp`` under :mod:`registry_cli.server.child_guard`."""

    def __init__(self, *args: Any, watch_fd: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pass_fds = (watch_fd,)
        self.env[child_guard.PID_VAR] = str(os.getpid())
        self.env[child_guard.FD_VAR] = str(watch_fd)

    @property
    def cmd(self) -> list[str]:
        cmd = super().cmd
        cmd[cmd.index("registry_cli")] = child_guard.__name__
        return cmd


class FtpServerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(2121, ge=0, le=65535)
    user: str | None = None
    password: str | None = Field(None, description="passed to the child by environment")
    passive_ports: str | None = Field(None, description="A-B")
    anonymous: bool = False


class FtpChildren:
    """The FTP servers this registry server started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = Path(tempfile.mkdtemp(prefix="regctl-ftp-"))
        self.children: dict[str, tuple[ServeFtpProcess, str | None]] = {}
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        # made with the first child: the children read the one end of the pipe, and
        # the other end closes when this process dies
        self._pipe: tuple[int, int] | None = None
        self._spawner: ThreadPoolExecutor | None = None

    def _watch_fd_and_spawner(self) -> tuple[int, ThreadPoolExecutor]:
        with self.lock:
            if self._pipe is None:
                self._pipe = os.pipe()
            if self._spawner is None:
                self._spawner = ThreadPoolExecutor(1, thread_name_prefix="ftp-spawner")
            return self._pipe[0], self._spawner

    def start(self, body: FtpServerBody) -> dict[str, Any]:
        args: list[str] = []
        env: dict[str, str] = {}
        if body.anonymous:
            if body.user or body.password:
                raise BadInput("anonymous takes no user or password")
            args.append("--anonymous")
        else:
            if not body.user or not body.password:
                raise BadInput("an FTP server needs user and password, or anonymous: true")
            args += ["--user", body.user, "--password-env", PASSWORD_VAR]
            env[PASSWORD_VAR] = body.password
        if body.passive_ports:
            args += ["--passive-ports", body.passive_ports]
        args += ["--port", str(body.port)]
        with self.lock:
            ident = f"ftp-{next(self.ids)}"
        watch_fd, spawner = self._watch_fd_and_spawner()
        child = GuardedFtpProcess(
            self.root,
            *args,
            log=self.logs / f"{ident}.log",
            env=env,
            host=body.host,
            watch_fd=watch_fd,
        )
        try:
            spawner.submit(child.start).result()
        except RuntimeError as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.startswith(("error:", "hint:"))]
            raise BadInput(
                "the FTP server did not start" + (f": {' '.join(lines)}" if lines else ""),
                hint="check host, port and passive_ports",
            ) from None
        with self.lock:
            self.children[ident] = (child, body.user)
        return self.describe(ident)

    def describe(self, ident: str) -> dict[str, Any]:
        child, user = self.children[ident]
        running = child.proc is not None and child.proc.poll() is None
        return {
            "id": ident,
            "host": child.host,
            "port": child.port,
            "user": user,
            "running": running,
        }

    def list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.describe(i) for i in sorted(self.children)]

    def stop(self, ident: str) -> dict[str, Any]:
        with self.lock:
            if ident not in self.children:
                raise NotFound(f"no FTP server {ident!r}", hint="GET /api/v1/ftp-servers")
            doc = self.describe(ident)
            child, _user = self.children.pop(ident)
        child.stop()
        doc["running"] = False
        return doc

    def stop_all(self) -> None:
        with self.lock:
            children = list(self.children.values())
            self.children.clear()
        for child, _user in children:
            child.stop()
        with self.lock:
            pipe, spawner, self._pipe, self._spawner = self._pipe, self._spawner, None, None
        if spawner is not None:
            spawner.shutdown(wait=False)
        for fd in pipe or ():
            os.close(fd)
        shutil.rmtree(self.logs, ignore_errors=True)
