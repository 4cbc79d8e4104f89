"""The ``fleet:`` section: who this client is and where it reports (docs/fleet.md)."""

from __future__ import annotations

from registry_cli.settings.engine import POSITIVE_INT, POSITIVE_SECONDS, TEXT, Section, Setting

FLEET = Section(
    "fleet",
    (
        Setting("device", TEXT, None, "--device", ("REGCTL_DEVICE",)),
        Setting("ring", TEXT, "default", "--ring", ("REGCTL_RING",)),
        Setting("report_url", TEXT, None, None, ("REGCTL_REPORT_URL",)),
        Setting("report_token_env", TEXT, None),
        Setting("outbox_max", POSITIVE_INT, 1000, None, ("REGCTL_FLEET_OUTBOX_MAX",)),
        Setting("report_interval_s", POSITIVE_SECONDS, 60.0, "--report-interval"),
        Setting("step_interval_s", POSITIVE_SECONDS, 60.0, None, ("REGCTL_FLEET_STEP_INTERVAL",)),
    ),
    {"report_token": "is not allowed (no secrets in the config); use report_token_env"},
)
