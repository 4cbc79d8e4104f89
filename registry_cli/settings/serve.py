"""The ``serve:`` section: ``regctl serve`` (prediction serving of one model)."""

from __future__ import annotations

from registry_cli.settings.engine import (
    BOOL,
    PORT,
    POSITIVE_INT,
    POSITIVE_SECONDS,
    SECONDS,
    TEXT,
    Section,
    Setting,
)

SERVE = Section(
    "serve",
    (
        Setting("model", TEXT, None, "NAME", ("REGCTL_SERVE_MODEL", "REGISTERED_MODEL_NAME")),
        Setting("alias", TEXT, "champion", "--alias", ("REGCTL_SERVE_ALIAS", "MODEL_ALIAS")),
        Setting("host", TEXT, "127.0.0.1", "--host", ("REGCTL_SERVE_HOST",)),
        Setting("port", PORT, 8000, "--port", ("REGCTL_SERVE_PORT",)),
        Setting("load_timeout_s", SECONDS, 60.0, "--load-timeout", ("REGCTL_SERVE_LOAD_TIMEOUT",)),
        Setting(
            "load_interval_s",
            POSITIVE_SECONDS,
            5.0,
            "--load-interval",
            ("REGCTL_SERVE_LOAD_INTERVAL",),
        ),
        Setting(
            "max_body_bytes",
            POSITIVE_INT,
            10 * 1024 * 1024,
            "--max-body-bytes",
            ("REGCTL_SERVE_MAX_BODY_BYTES",),
        ),
        Setting(
            "callback_timeout_s",
            POSITIVE_SECONDS,
            5.0,
            "--callback-timeout",
            ("REGCTL_SERVE_CALLBACK_TIMEOUT",),
        ),
        Setting("access_log", BOOL, False, "--access-log", ("REGCTL_SERVE_ACCESS_LOG",)),
        Setting("follow", BOOL, False, "--follow", ("REGCTL_SERVE_FOLLOW",)),
        Setting(
            "poll_interval_s",
            POSITIVE_SECONDS,
            5.0,
            "--poll-interval",
            ("REGCTL_SERVE_POLL_INTERVAL",),
        ),
    ),
)
