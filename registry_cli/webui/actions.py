"""Changes from the browser: promote, roll back, archive, set or remove an alias, tag.

Each action has a confirmation page (``GET .../-/act/ACTION``: it shows what will
happen and collects the reason; it writes nothing) and a POST to the same
address that makes one core call with a registry whose actor is the token's
name, so the audit says who did it. A POST is refused (403, nothing changes)
without a live session, with a missing or wrong CSRF token, or when the
token's scope does not allow the action. A refusal of the core (a failed
gate, a lifecycle rule) is shown on the confirmation page with the same
message and hint the CLI prints.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from registry_cli.core.registry import ModelRegistry
from registry_cli.core.types import ChangeResult
from registry_cli.error_codes import status_of
from registry_cli.errors import BadInput, RegctlError
from registry_cli.webui import access
from registry_cli.webui.access import Access, Viewer
from registry_cli.webui.render import Renderer, redirect

Form = dict[str, str]


@dataclass(frozen=True)
class Action:
    title: str
    scope: str
    perform: Callable[[ModelRegistry, str, Form], ChangeResult]


def _needed(form: Form, key: str, what: str) -> str:
    value = form.get(key, "").strip()
    if not value:
        raise BadInput(f"{what} is empty", hint=f"fill in the {what}")
    return value


def _promote(reg: ModelRegistry, name: str, f: Form) -> ChangeResult:
    return reg.promote(
        name,
        version=f.get("version") or None,
        to=f.get("to") or None,
        force=f.get("force") == "on",
        reason=f.get("reason", "").strip() or None,
    )


def _rollback(reg: ModelRegistry, name: str, f: Form) -> ChangeResult:
    return reg.rollback(name, to=f.get("to", "").strip() or None)


def _archive(reg: ModelRegistry, name: str, f: Form) -> ChangeResult:
    return reg.archive(
        name, _needed(f, "version", "version"), reason=_needed(f, "reason", "reason")
    )


def _alias_set(reg: ModelRegistry, name: str, f: Form) -> ChangeResult:
    return reg.set_alias(name, _needed(f, "alias", "alias"), _needed(f, "version", "version"))


def _alias_rm(reg: ModelRegistry, name: str, f: Form) -> ChangeResult:
    return reg.remove_alias(name, _needed(f, "alias", "alias"))


def _tag(reg: ModelRegistry, name: str, f: Form) -> ChangeResult:
    key = _needed(f, "key", "tag name")
    return reg.tag(name, _needed(f, "version", "version"), {key: f.get("value", "")})


def _tag_rm(reg: ModelRegistry, name: str, f: Form) -> ChangeResult:
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


def add_actions(router: APIRouter, gate: Access, ui: Renderer) -> None:
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

    def refused(why: str, viewer: Viewer | None = None) -> Response:
        return ui.page(
            "refused.html", 403, viewer=viewer, notice=None, path="", why=why, anonymous_read=False
        )

    @router.get(path)
    def confirm(request: Request, name: str, action: str) -> Response:
        if action not in ACTIONS:
            return refused(f"unknown action {action!r}")
        session = gate.session_of(request)
        if session is None:
            return redirect(access.sign_in_url(request))
        viewer = Viewer(session.token_name, session.scopes, session)
        if not viewer.may(ACTIONS[action].scope):
            return refused(_scope_message(viewer, ACTIONS[action].scope), viewer)
        values = {k: request.query_params.get(k, "") for k in FIELDS}
        try:
            return confirm_page(request, viewer, name, action, values)
        except RegctlError as exc:
            return ui.page(
                "error.html",
                status_of(exc),
                viewer=viewer,
                notice=None,
                path="",
                anonymous_read=gate.deps.anonymous_read,
                error=exc,
            )

    @router.post(path)
    async def act(request: Request, name: str, action: str) -> Response:
        form = await access.form_of(request)
        session = gate.session_of(request)
        if session is None:
            return refused("no live session: sign in first")
        if not session.csrf_ok(form.get("csrf")):
            return refused("the form's CSRF token is missing or wrong; nothing was changed")
        viewer = Viewer(session.token_name, session.scopes, session)
        if action not in ACTIONS:
            return refused(f"unknown action {action!r}", viewer)
        spec = ACTIONS[action]
        if not viewer.may(spec.scope):
            return refused(_scope_message(viewer, spec.scope), viewer)
        values = {k: form.get(k, "") for k in FIELDS}
        reg = gate.deps.registry(viewer.name)  # the audit records the token's name
        try:
            result = await run_in_threadpool(spec.perform, reg, name, values)
        except RegctlError as exc:
            return await run_in_threadpool(confirm_page, request, viewer, name, action, values, exc)
        session.notice = describe(result)
        return redirect(_back(name, values.get("version")))


def _scope_message(viewer: Viewer, scope: str) -> str:
    return (
        f"token {viewer.name!r} (scopes: {', '.join(viewer.scopes)}) may not {scope}; "
        f"sign in with a token with the {scope!r} or 'admin' scope"
    )


def _back(name: str, version: str | None) -> str:
    base = f"/models/{urllib.parse.quote(name)}"
    if version and version.strip() and not version.strip().startswith("@"):
        return f"{base}/-/versions/{urllib.parse.quote(version.strip())}"
    return base
