"""``regctl events flush`` and ``regctl events status``: the outbox of webhook
deliveries (and other side effects) of this root, see docs/events.md."""

from __future__ import annotations

import typer

from registry_cli.cli import common
from registry_cli.cli.common import JSON_HELP, command, open_local, print_json

events_app = typer.Typer(
    help="The outbox of webhook deliveries and OCI mirror pushes: what is still to be sent, "
    "and sending it now.",
    no_args_is_help=True,
)


def flush(
    dead: bool = typer.Option(
        False, "--dead", help="Also retry the dead letters (each gets a new retry_for_h)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Try every delivery waiting in the outbox once, now; exit 6 when any failed."""
    from registry_cli.core import outbox
    from registry_cli.core.outbox_send import flush as flush_outbox
    from registry_cli.oci import mirrors  # sends the OCI mirror pushes too

    reg = open_local()
    reg.states.require_root()
    mirrors.attach(reg)
    report = flush_outbox(reg.store, outbox.policy(reg.config), include_dead=dead)
    if as_json:
        print_json(report.to_doc())
    elif not common.STATE.quiet:
        typer.echo(
            f"sent {report.sent}, failed {report.failed}, dead {report.dead}"
            f" (outbox: {report.pending} pending, {report.dead_letters} dead)"
        )
    if report.failed or report.dead:
        from registry_cli.errors import RemoteError

        raise RemoteError(
            f"{report.failed + report.dead} of {report.sent + report.failed + report.dead} "
            "deliveries not sent",
            hint="failed ones stay in the outbox (any serve-registry retries them); "
            "see regctl events status",
        )


def status(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """How many deliveries wait in the outbox, and the dead letters (never a secret)."""
    from registry_cli.core import (
        events,  # noqa: F401 (names webhook deliveries)
        outbox,
    )
    from registry_cli.oci import mirrors  # noqa: F401 (names OCI mirror pushes)

    reg = open_local()
    reg.states.require_root()
    depth = outbox.outbox_depth(reg.store)
    dead = []
    for delivery_id in outbox.dead_ids(reg.store):
        doc = outbox.read(reg.store, delivery_id, dead=True) or {}
        spec = outbox.sender(str(doc.get("kind")))
        what = spec.describe(doc.get("payload") or {}) if spec else str(doc.get("kind"))
        dead.append(
            {
                "id": delivery_id,
                "kind": doc.get("kind"),
                "what": what,
                "created": doc.get("created"),
                "tries": doc.get("tries"),
                "last_error": doc.get("last_error"),
            }
        )
    if as_json:
        print_json({**depth, "dead_letters": dead})
        return
    typer.echo(f"outbox: {depth['pending']} pending, {depth['dead']} dead")
    for letter in dead:
        typer.echo(
            f"dead {letter['id']}: {letter['what']}, {letter['tries']} tries: "
            f"{letter['last_error']}"
        )


def register(app: typer.Typer) -> None:
    events_app.command("flush")(command(flush))
    events_app.command("status")(command(status))
    app.add_typer(events_app, name="events")
