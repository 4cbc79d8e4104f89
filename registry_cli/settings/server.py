"""The ``server:`` section: ``regctl serve-registry``."""

from __future__ import annotations

from registry_cli.settings.engine import BOOL, PATH, PORT, SIZE, TEXT, Section, Setting

SERVER = Section(
    "server",
    (
        Setting("host", TEXT, "127.0.0.1", "--host", ("REGCTL_SERVER_HOST",)),
        Setting("port", PORT, 8008, "--port", ("REGCTL_SERVER_PORT",)),
        Setting("anonymous_read", BOOL, False, "--anonymous-read"),
        Setting("tls_cert", PATH, None, "--tls-cert"),
        Setting("tls_key", PATH, None, "--tls-key"),
        Setting("max_upload_size", SIZE, 50 * 1024**3, "--max-upload-size"),
    ),
)
