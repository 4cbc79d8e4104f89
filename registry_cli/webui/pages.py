"""The pages people read (GET only; nothing here writes): models, a model, a version
(with a comparison), the audit log, a payload file, sign-in and sign-out."""

from __future__ import annotations

import urllib.parse
from typing import Any

from fastapi import APIRouter, Request, Response

from registry_cli.core.types import VersionInfo
from registry_cli.errors import RegctlError
from registry_cli.webui import access, views
from registry_cli.webui.access import Access, Viewer
from registry_cli.webui.facts import VersionFacts
from registry_cli.webui.failures import Refused, SignInFirst
from registry_cli.webui.render import Renderer, redirect


def _int(text: str | None, default: int = 1) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


def add_pages(router: APIRouter, gate: Access, ui: Renderer) -> None:
    facts = VersionFacts()  # per server: immutable facts of versions, read once

    def show(request: Request, viewer: Viewer, template: str, status: int = 200, **ctx: Any):
        notice = viewer.session.take_notice() if viewer.session else None
        return ui.page(
            template,
            status,
            viewer=viewer,
            notice=notice,
            path=request.url.path,
            anonymous_read=gate.deps.anonymous_read,
            **ctx,
        )

    def reader(request: Request) -> Viewer:
        viewer = gate.viewer(request)
        if viewer is None:
            raise SignInFirst()
        return viewer

    @router.get("/static/{name}")
    def static(request: Request, name: str) -> Response:
        return ui.asset(request, name)

    @router.get("/")
    def models(request: Request, q: str = "") -> Response:
        viewer = reader(request)
        reg = gate.deps.registry(viewer.name)
        rows, total = views.model_rows(reg, q)
        return show(request, viewer, "models.html", rows=rows, total=total, q=q, stages=reg.stages)

    @router.get("/models/{name:modelname}")
    def model(request: Request, name: str, page: str | None = None) -> Response:
        viewer = reader(request)
        reg = gate.deps.registry(viewer.name)
        entries = reg.audit().entries
        data = views.model_page(reg, name, _int(page), facts, entries)
        return show(request, viewer, "model.html", m=data)

    @router.get("/models/{name:modelname}/-/versions/{version}")
    def version(request: Request, name: str, version: str, compare: str | None = None) -> Response:
        viewer = reader(request)
        reg = gate.deps.registry(viewer.name)
        info = reg.get(f"{name}:{version}")
        state = reg.model_state(name)
        comparison, compare_error = None, None
        if compare and compare.strip():
            other_ref = compare.strip()
            if not other_ref.startswith("@"):
                other_ref = f":{other_ref}"
            try:
                other = reg.get(f"{name}{other_ref}", with_bundle=False)
                comparison = views.compare(info, other)
            except RegctlError as exc:
                compare_error = exc  # the page stays; the comparison says what is wrong
        base = str(request.base_url).rstrip("/")
        return show(
            request,
            viewer,
            "version.html",
            v=info,
            comparison=comparison,
            compare_error=compare_error,
            compare_text=compare or "",
            commands=_commands(info, base),
            previous=max((n for n in state.versions if n < info.version), default=None),
            champion=state.aliases.get("champion"),
            stages=reg.stages,
            quote=urllib.parse.quote,
        )

    @router.get("/models/{name:modelname}/-/versions/{version}/files/{path:path}")
    def download(request: Request, name: str, version: str, path: str) -> Response:
        viewer = reader(request)
        return gate.deps.version_file(request, name, version, path, viewer)

    @router.get("/audit")
    def audit(
        request: Request,
        model: str = "",
        action: str = "",
        actor: str = "",
        page: str | None = None,
    ) -> Response:
        viewer = reader(request)
        log = gate.deps.registry(viewer.name).audit()
        data = views.audit_view(
            log.entries, model=model.strip(), action=action, actor=actor, page=_int(page)
        )
        keep = {k: v for k, v in (("model", model), ("action", action), ("actor", actor)) if v}
        return show(
            request,
            viewer,
            "audit.html",
            a=data,
            model=model,
            action=action,
            actor=actor,
            damaged=log.damaged_lines,
            query=urllib.parse.urlencode(keep),
        )

    # ------------------------------------------------------------- sign-in/out
    @router.get("/sign-in")
    def sign_in_form(request: Request, next: str = "/") -> Response:
        return _sign_in_page(request, next, None, 200)

    def _sign_in_page(request: Request, nxt: str, error: str | None, status: int) -> Response:
        session = gate.session_of(request)
        viewer = Viewer(session.token_name, session.scopes, session) if session else None
        csrf = access.new_signin_csrf()
        response = ui.page(
            "sign_in.html",
            status,
            viewer=viewer,
            notice=None,
            path=request.url.path,
            anonymous_read=gate.deps.anonymous_read,
            next=access.local_path(nxt),
            signin_csrf=csrf,
            error=error,
            signed_out=request.query_params.get("signed_out") == "1",
        )
        access.set_cookie(request, response, access.SIGNIN_COOKIE, csrf, max_age=3600)
        return response

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await access.form_of(request)
        if not access.csrf_matches(request.cookies.get(access.SIGNIN_COOKIE), form.get("csrf")):
            raise Refused("the sign-in form expired or did not come from this site")
        identity, session_id = await gate.sign_in(request, form.get("token", ""))
        nxt = access.local_path(form.get("next"))
        if identity is None:
            return _sign_in_page(
                request, nxt, "That token was not accepted: unknown, expired or revoked.", 401
            )
        response = redirect(nxt)
        access.set_cookie(request, response, access.SESSION_COOKIE, session_id, max_age=None)
        access.clear_cookie(request, response, access.SIGNIN_COOKIE)
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        form = await access.form_of(request)
        session = gate.session_of(request)
        if session is None or not session.csrf_ok(form.get("csrf")):
            raise Refused("no live session, or the form did not come from this site")
        gate.sign_out(request)
        response = redirect("/sign-in?signed_out=1")
        access.clear_cookie(request, response, access.SESSION_COOKIE)
        return response


def _commands(info: VersionInfo, base: str) -> dict[str, str]:
    stage = info.stages[-1] if info.stages else None
    pull = f"regctl pull {info.name} --version {info.vname} --from {base}"
    if stage:
        pull = f"regctl pull {info.name} --stage {stage} --version {info.vname} --from {base}"
    return {
        "pull": pull,
        "resolve": f"regctl --remote {base} resolve {info.name}:{info.vname}",
    }
