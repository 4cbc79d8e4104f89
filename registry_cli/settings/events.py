"""The ``events:`` section: how long the outbox keeps retrying a delivery and how its
senders pace themselves (docs/events.md)."""

from __future__ import annotations

from registry_cli.settings.engine import POSITIVE_SECONDS, Kind, Section, Setting

HOURS = Kind("a number of hours above 0", POSITIVE_SECONDS.parse)

EVENTS = Section(
    "events",
    (
        # retry a delivery for this long after its change, then keep it as a dead letter
        Setting("retry_for_h", HOURS, 24.0, None, ("REGCTL_EVENTS_RETRY_FOR_H",)),
        # the longest wait between two tries (the back-off doubles up to it)
        Setting("retry_cap_s", POSITIVE_SECONDS, 900.0, None, ("REGCTL_EVENTS_RETRY_CAP_S",)),
        # how often a serve-registry looks in the outbox for deliveries due
        Setting("poll_s", POSITIVE_SECONDS, 5.0, None, ("REGCTL_EVENTS_POLL_S",)),
        # how long a sender's claim outlives the time a try may take: a killed sender's
        # deliveries are taken over that much later
        Setting("claim_s", POSITIVE_SECONDS, 30.0, None, ("REGCTL_EVENTS_CLAIM_S",)),
    ),
)
