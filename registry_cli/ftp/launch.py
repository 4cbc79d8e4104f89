"""Start ``regctl serve-ftp`` as a subprocess and wait until it accepts connections:
the one launcher used by the tests, the benchmark and the demo.

    with ServeFtpProcess(root, "--user", "mlops", "--password-env", "PW",
                         env={"PW": secret}, log=Path("serve-ftp.log")) as srv:
        srv.port ...   # the port the server picked itself (--port 0)

Starting, waiting and stopping are ``registry_cli.serving.ServeProcess``'s.
"""

from __future__ import annotations

import re

from registry_cli.serving import ServeProcess

LISTENING_RE = re.compile(r"listening on ([0-9.]+):(\d+)")


class ServeFtpProcess(ServeProcess):
    """A running ``regctl --root ROOT serve-ftp --host HOST --port 0 ARGS...``."""

    command = "serve-ftp"
    ready_re = LISTENING_RE
    start_timeout_default = 30.0
    stop_timeout_default = 15.0

    def _ready(self, found: re.Match[str]) -> None:
        self.port = int(found.group(2))
