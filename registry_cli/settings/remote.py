"""The ``remote:`` section: the client of a registry server (``--remote``)."""

from __future__ import annotations

from registry_cli.settings.engine import PATH, TEXT, TIMEOUT, Section, Setting

REMOTE = Section(
    "remote",
    (
        Setting("url", TEXT, None, "--remote", ("REGCTL_URL",)),
        Setting("token_file", PATH, None, "--token-file"),
        Setting("ca_cert", PATH, None),
        Setting("timeout_s", TIMEOUT, 300.0),
    ),
    {"token": "is not allowed (no plaintext tokens); use token_file or $REGCTL_TOKEN"},
)
