"""The fleet page of a model (docs/fleet.md): rings × versions with device counts,
stragglers, failures and the rollout's progress; for ``promote`` tokens, the
rollout's controls.

``GET /models/{name}/-/fleet`` shows the page. Each control (start, step, pause,
resume, abort) is a confirmation page, ``GET .../-/fleet/act/ACTION``, which
writes nothing, and a POST to the same address, checked as every action of the
UI is (:mod:`registry_cli.webui.actions`): refused (403, nothing changed) from
another site, without a live session, with a missing or wrong CSRF token, or
without the ``promote`` scope. Views raise; the UI's one error handler
(:mod:`registry_cli.webui.failures`) shows a refusal of the core on the
confirmation page again, with the CLI's message and hint.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from registry_cli.core.fleet import Fleet
from registry_cli.core.fleet_reports import parse_duration
from registry_cli.core.registry import ModelRegistry
from registry_cli.core.rollout import Rollouts
from registry_cli.error_codes import status_of
from registry_cli.errors import BadInput, RegctlError
from registry_cli.webui import access
from registry_cli.webui.access import Access, Viewer
from registry_cli.webui.actions import Form, posted, require, signed_in, tell
from registry_cli.webui.failures import Failures, Refused, SignInFirst
from registry_cli.webui.render import Renderer, redirect

ACTIONS = {
    "start": "Start a rollout",
    "step": "Step the rollout",
    "pause": "Pause the rollout",
    "resume": "Resume the rollout",
    "abort": "Abort the rollout",
}
FIELDS = ("version", "rings", "min_healthy", "soak", "min_devices")
DEFAULTS = {"rings": "canary,all", "min_healthy": "0.95", "soak": "30m", "min_devices": "1"}


def fleet_page(reg: ModelRegistry, name: str, stale: str) -> dict[str, Any]:
    """The page's data: the model's fleet status and its rollout (or None)."""
    doc = Fleet(reg).status(name, stale_s=parse_duration(stale or "1h", "stale"))
    model = doc["models"][0]
    versions = sorted(
        {v["version"] for r in model["rings"] for v in r["versions"]},
        key=lambda v: int(v[1:]) if v[1:].isdigit() else -1,
        reverse=True,
    )
    rollout, _tag = Rollouts(reg).load(name)
    return {
        "name": name,
        "time": doc["time"],
        "stale": stale or "1h",
        "model": model,
        "versions": versions,
        "counts": {
            (r["ring"], v["version"]): v["devices"] for r in model["rings"] for v in r["versions"]
        },
        "rollout": rollout,
    }


def _perform(reg: ModelRegistry, name: str, action: str, form: Form) -> dict[str, Any]:
    rollouts = Rollouts(reg)
    if action != "start":
        return getattr(rollouts, action)(name)
    try:
        min_healthy = float(form.get("min_healthy") or DEFAULTS["min_healthy"])
        min_devices = int(form.get("min_devices") or DEFAULTS["min_devices"])
    except ValueError:
        raise BadInput("min healthy is a number and min devices a whole number") from None
    rings = [r.strip() for r in (form.get("rings") or "").split(",") if r.strip()]
    return rollouts.start(
        name,
        (form.get("version") or "").strip(),
        rings,
        min_healthy=min_healthy,
        soak_s=parse_duration(form.get("soak") or DEFAULTS["soak"], "soak"),
        min_devices=min_devices,
    )


def add_fleet(router: APIRouter, gate: Access, ui: Renderer, failures: Failures) -> None:
    base = "/models/{name:modelname}/-/fleet"

    def page(request: Request, viewer: Viewer, status: int = 200, **ctx: Any) -> Response:
        notice = viewer.session.take_notice() if viewer.session else None
        return ui.page(
            "fleet.html",
            status,
            viewer=viewer,
            notice=notice,
            path=request.url.path,
            anonymous_read=gate.deps.anonymous_read,
            quote=urllib.parse.quote,
            **ctx,
        )

    def confirm_page(
        request: Request,
        viewer: Viewer,
        name: str,
        action: str,
        values: Form,
        error: RegctlError | None = None,
    ) -> Response:
        data = fleet_page(gate.deps.registry(viewer.name), name, "1h")
        return page(
            request,
            viewer,
            status_of(error) if error else 200,
            f=data,
            confirm={"action": action, "title": ACTIONS[action], "values": values},
            error=error,
        )

    def allowed(viewer: Viewer, action: str) -> None:
        if action not in ACTIONS:
            raise Refused(f"unknown action {action!r}", viewer)
        require(viewer, "promote")

    @router.get(base)
    def show(request: Request, name: str, stale: str = "1h") -> Response:
        viewer = gate.viewer(request)
        if viewer is None:
            raise SignInFirst()
        data = fleet_page(gate.deps.registry(viewer.name), name, stale)
        return page(request, viewer, f=data, confirm=None)

    @router.get(base + "/act/{action}")
    def confirm(request: Request, name: str, action: str) -> Response:
        if action not in ACTIONS:
            raise Refused(f"unknown action {action!r}")
        viewer = signed_in(gate, request)
        allowed(viewer, action)
        values = {k: request.query_params.get(k, DEFAULTS.get(k, "")) for k in FIELDS}
        return confirm_page(request, viewer, name, action, values)

    @router.post(base + "/act/{action}", name="fleet-act")
    async def act(request: Request, name: str, action: str) -> Response:
        viewer, form = await posted(gate, request)
        allowed(viewer, action)
        values = {k: form.get(k, "") for k in FIELDS}
        reg = gate.deps.registry(viewer.name)  # the audit records the token's name
        result = await run_in_threadpool(_perform, reg, name, action, values)
        tell(viewer, f"{result['action']} {name}:{result['version']}: {result['message']}")
        return redirect(f"/models/{urllib.parse.quote(name)}/-/fleet")

    def form_again(request: Request, viewer: Viewer, exc: RegctlError) -> Response:
        """A refused control: its confirmation page again, with the problem and the values."""
        params = request.path_params
        values = {k: access.parsed_form(request).get(k, "") for k in FIELDS}
        return confirm_page(request, viewer, params["name"], params["action"], values, exc)

    failures.form_pages["fleet-act"] = form_again
