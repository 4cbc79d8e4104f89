"""Start ``regctl serve-registry`` as a subprocess and wait until it accepts
connections: the launcher used by the tests and the benchmark.

    with ServeRegistryProcess(root, "--max-upload-size", "1MiB", log=Path("srv.log")) as srv:
        srv.url ...   # http://127.0.0.1:PORT, the port the server picked itself (--port 0)

Starting, waiting and stopping are ``registry_cli.serving.ServeProcess``'s; the app
the child serves is composed by ``registry_cli.httpapp``.
"""

from __future__ import annotations

import re

from registry_cli.serving import ServeProcess

READY_RE = re.compile(r"serving .* on (https?)://(\[[^\]]+\]|[^:/\s]+):(\d+)")


class ServeRegistryProcess(ServeProcess):
    """A running ``regctl --root ROOT serve-registry --host HOST --port 0 ARGS...``."""

    command = "serve-registry"
    ready_re = READY_RE
    start_timeout_default = 60.0
    stop_timeout_default = 20.0
    scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def _ready(self, found: re.Match[str]) -> None:
        self.scheme, self.port = found.group(1), int(found.group(3))
