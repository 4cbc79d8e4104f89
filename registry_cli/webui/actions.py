"""Changes from the browser: promote, roll back, archive, set or remove an alias, tag.

Each action has a confirmation page (``GET .../-/act/ACTION``: it shows what will
happen and collects the reason; it writes nothing) and a POST to the same
address that makes one core call with a registry whose actor is the token's
name, so the audit says who did it. A POST is refused (403, nothing changes)
from another site, without a live session, with a missing or wrong CSRF token,
or when the token's scope does not allow the action. A refusal of the core (a
failed gate, a lifecycle rule, bad input) is raised like any other; the UI's one
error handler shows it on the confirmation page again, with the same message
and hint the CLI prints.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from registry_cli.core.contract import Registry
from registry_cli.core.types import ChangeResult
from registry_cli.error_codes import status_of
from registry_cli.errors import BadInput, RegctlError
from registry_cli.webui import access
from registry_cli.webui.access import Access, Viewer
from registry_cli.webui.failures import Failures, Refused, SignInFirst
from registry_cli.webui.render import Renderer, redirect

Form = dict[str, str]


@dataclass(frozen=True)
class Action:
    title: str
    scope: str
    perform: Callable[[Registry, str, Form], ChangeResult]


def _needed(form: Form, key: str, what: str) -> str:
    value = form.get(key, "").strip()
    if not value:
        raise BadInput(f"{what} is empty", hint=f"fill in the {what}")
    return value


def _promote(reg: Registry, name: str, f: Form) -> ChangeResult:
    return reg.promote(
        name,
        version=f.get("version") or None,
        to=f.get("to") or None,
        force=f.get("force") == "on",
        reason=f.get("reason", "").strip() or None,
    )


def _rollback(reg: Registry, name: str, f: Form) -> ChangeResult:
    return reg.rollback(name, to=f.get("to", "").strip() or None)


def _archive(reg: Registry, name: str, f: Form) -> ChangeResult:
    return reg.archive(
        name, _needed(f, "version", "version"), reason=_needed(f, "reason", "reason")
    )


def _alias_set(reg: Registry, name: str, f: Form) -> ChangeResult:
    return reg.set_alias(name, _needed(f, "alias", "alias"), _needed(f, "version", "version"))


def _alias_rm(reg: Registry, name: str, f: Form) -> ChangeResult:
    return reg.remove_alias(name, _needed(f, "alias", "alias"))


def _tag(reg: Registry, name: str, f: Form) -> ChangeResult:
    key = _needed(f, "key", "tag name")
    return reg.tag(name, _needed(f, "version", "version"), {key: f.get("value", "")})


def _tag_rm(reg: Registry, name: str, f: Form) -> ChangeResult:
    return reg.tag(name, _needed(f, "version", "version"), remove=[_needed(f, "key", "tag name")])


ACTIONS = {
    "promote": Action("Promote", "promote", _promote),
    "rollback": Action("Roll back", "promote", _rollback),
    "archive": Action("Archive", "promote", _archive),
    "alias-set": Action("Set an alias", "promote", _alias_set),
    "alias-rm": Action("Remove an alias", "promote", _alias_rm),
    "tag": Action("Set a tag", "publish", _tag),
    "tag-rm": Action("Remove a tag", "publish", _tag_rm),
}
FIELDS = ("version", "to", "reason", "force", "alias", "key", "value")


def describe(result: ChangeResult) -> str:
    """One line saying what changed (as the CLI's human output does)."""
    if result.noop:
        return result.message or f"{result.action}: nothing changed"
    parts = []
    for alias, (old, new) in (result.changed.get("aliases") or {}).items():
        parts.append(f"@{alias}: {old or '-'} → {new or '-'}")
    for stage, (old, new) in (result.changed.get("latest") or {}).items():
        parts.append(f"{stage} LATEST: {old or '-'} → {new or '-'}")
    tags = result.changed.get("tags") or {}
    if tags.get("set"):
        parts.append("tags set: " + ", ".join(f"{k}={v}" for k, v in tags["set"].items()))
    if tags.get("removed"):
        parts.append("tags removed: " + ", ".join(tags["removed"]))
    if result.changed.get("status"):
        parts.append("status: archived")
    if result.changed.get("forced"):
        parts.append("gate overridden: " + "; ".join(result.changed.get("overridden", [])))
    head = f"{result.action} {result.name}:{result.version}" if result.version else result.action
    return head + (": " + "; ".join(parts) if parts else "")


def add_actions(router: APIRouter, gate: Access, ui: Renderer, failures: Failures) -> None:
    path = "/models/{name:modelname}/-/act/{action}"

    def confirm_page(
        request: Request,
        viewer: Viewer,
        name: str,
        action: str,
        values: Form,
        error: RegctlError | None = None,
    ) -> Response:
        reg = gate.deps.registry(viewer.name)
        state = reg.model_state(name)
        return ui.page(
            "confirm.html",
            status_of(error) if error else 200,
            viewer=viewer,
            notice=None,
            path=request.url.path,
            anonymous_read=gate.deps.anonymous_read,
            name=name,
            action=action,
            spec=ACTIONS[action],
            values=values,
            error=error,
            stages=reg.stages,
            aliases={a: f"v{v}" for a, v in sorted(state.aliases.items())},
            rollback_to=(f"v{state.history[-1]}" if state.history else None),
            champion=(f"v{state.aliases['champion']}" if "champion" in state.aliases else None),
            back=_back(name, values.get("version")),
        )

    def allowed(viewer: Viewer, action: str) -> Action:
        if action not in ACTIONS:
            raise Refused(f"unknown action {action!r}", viewer)
        spec = ACTIONS[action]
        require(viewer, spec.scope)
        return spec

    @router.get(path)
    def confirm(request: Request, name: str, action: str) -> Response:
        if action not in ACTIONS:
            raise Refused(f"unknown action {action!r}")
        viewer = signed_in(gate, request)
        allowed(viewer, action)
        values = {k: request.query_params.get(k, "") for k in FIELDS}
        return confirm_page(request, viewer, name, action, values)

    @router.post(path, name="act")
    async def act(request: Request, name: str, action: str) -> Response:
        viewer, form = await posted(gate, request)
        spec = allowed(viewer, action)
        values = {k: form.get(k, "") for k in FIELDS}
        reg = gate.deps.registry(viewer.name)  # the audit records the token's name
        result = await run_in_threadpool(spec.perform, reg, name, values)
        tell(viewer, describe(result))
        return redirect(_back(name, values.get("version")))

    def form_again(request: Request, viewer: Viewer, exc: RegctlError) -> Response:
        """A refused action: its confirmation page again, with the problem and the values."""
        params = request.path_params
        values = {k: access.parsed_form(request).get(k, "") for k in FIELDS}
        return confirm_page(request, viewer, params["name"], params["action"], values, exc)

    failures.form_pages["act"] = form_again


def signed_in(gate: Access, request: Request) -> Viewer:
    """The signed-in viewer of a confirmation page (anyone else is sent to sign in)."""
    session = gate.session_of(request)
    if session is None:
        raise SignInFirst()
    return Viewer(session.token_name, session.scopes, session)


async def posted(gate: Access, request: Request) -> tuple[Viewer, Form]:
    """The viewer and form of an action's POST: a live session and its CSRF token."""
    form = await access.form_of(request)
    session = gate.session_of(request)
    if session is None:
        raise Refused("no live session: sign in first")
    if not session.csrf_ok(form.get("csrf")):
        raise Refused("the form's CSRF token is missing or wrong")
    return Viewer(session.token_name, session.scopes, session), form


def tell(viewer: Viewer, notice: str) -> None:
    """Show ``notice`` on the viewer's next page (once)."""
    if viewer.session is not None:
        viewer.session.tell(notice)  # kept with the session: any replica shows it


def require(viewer: Viewer, scope: str) -> None:
    """Refuse unless the viewer's token has ``scope``."""
    if not viewer.may(scope):
        raise Refused(
            f"token {viewer.name!r} (scopes: {', '.join(viewer.scopes)}) may not {scope}; "
            f"sign in with a token with the {scope!r} or 'admin' scope",
            viewer,
        )


def _back(name: str, version: str | None) -> str:
    base = f"/models/{urllib.parse.quote(name)}"
    if version and version.strip() and not version.strip().startswith("@"):
        return f"{base}/-/versions/{urllib.parse.quote(version.strip())}"
    return base
