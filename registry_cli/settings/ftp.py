"""The ``ftp:`` section: ``regctl serve-ftp``."""

from __future__ import annotations

from registry_cli.settings.engine import (
    BOOL,
    COUNT,
    PATH,
    PORT,
    PORT_RANGE,
    SECONDS,
    TEXT,
    Section,
    Setting,
)
from registry_cli.settings.secrets import NO_PLAINTEXT

FTP = Section(
    "ftp",
    (
        Setting("host", TEXT, "127.0.0.1", "--host"),
        Setting("port", PORT, 2121, "--port"),
        Setting("user", TEXT, None, "--user"),
        Setting("password_env", TEXT, None, "--password-env"),
        Setting("password_file", PATH, None, "--password-file"),
        Setting("anonymous", BOOL, False, "--anonymous"),
        Setting("passive_ports", PORT_RANGE, None, "--passive-ports"),
        Setting("masquerade_address", TEXT, None, "--masquerade-address"),
        Setting("max_cons", COUNT, 256, "--max-cons"),
        Setting("max_cons_per_ip", COUNT, 32, "--max-cons-per-ip"),
        Setting("login_delay_s", SECONDS, 2.0, "--login-delay"),
        Setting("idle_timeout_s", SECONDS, 300.0),
        Setting("tls_cert", PATH, None, "--tls-cert"),
        Setting("tls_key", PATH, None, "--tls-key"),
        Setting("log_file", PATH, None, "--log-file"),
    ),
    NO_PLAINTEXT,
)
