"""MLflow's Model Registry REST API on ``serve-registry`` (see docs/mlflow.md).

``MLFLOW_REGISTRY_URI`` pointed at the server and ``MLFLOW_TRACKING_TOKEN`` set to
a regctl token: ``MlflowClient``, ``mlflow.register_model`` and ``models:/`` URIs
land here, under ``/api/2.0/mlflow/`` (and ``/ajax-api/2.0/mlflow/``). Each route
is one or two public calls of the registry; the lifecycle decisions of alias and
stage changes are ``mlflow_aliases``'s, the documents ``mlflow_docs``'s. Scopes:
``read`` for reads and searches, ``publish`` for new versions and tags, ``promote``
for aliases and stage transitions.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from registry_cli.core.names import validate_model_name
from registry_cli.errors import BadInput, NotFound, RuleViolation
from registry_cli.server import mlflow_aliases, mlflow_artifacts, mlflow_filters
from registry_cli.server import mlflow_docs as docs
from registry_cli.server.mlflow_http import PREFIXES, Call, MlflowError, MlflowRoute, endpoint

router = APIRouter(route_class=MlflowRoute)


def route(path: str, methods: list[str], scope: str):  # type: ignore[no-untyped-def]
    def register(work):  # type: ignore[no-untyped-def]
        for prefix in PREFIXES:
            router.add_api_route(
                f"{prefix}/{path}",
                endpoint(scope, work),
                methods=methods,
                tags=["mlflow"],
                include_in_schema=prefix == PREFIXES[0],
                name=f"mlflow {path} {' '.join(methods)}",
            )
        return work

    return register


# ----------------------------------------------------------------- documents
def version_doc(call: Call, name: str, ref: str) -> dict[str, Any]:
    """``ModelVersion`` of ``name`` + ``ref`` (``:vN`` or ``@alias``), cached while unchanged."""
    shown = call.ctx.reads.version_doc(call.reg, f"{name}{ref}", with_bundle=False)
    return docs.model_version(shown, call.stages)


def versions_of(call: Call, name: str) -> list[dict[str, Any]]:
    return [docs.model_version(v.to_json(), call.stages) for v in call.reg.list_versions(name)]


def model_doc(call: Call, name: str) -> dict[str, Any]:
    state = call.reg.model_state(name)
    return docs.registered_model(
        name,
        versions_of(call, name),
        state.all_aliases(),
        state.description,
        state.latest.get(call.stages[-1]),
    )


def fixed(what: str, hint: str) -> RuleViolation:
    return RuleViolation(
        f"{what} is fixed in regctl and not changed over the MLflow API", hint=hint
    )


# ----------------------------------------------------------------- registered models
@route("registered-models/create", ["POST"], "publish")
def create_model(call: Call) -> dict[str, Any]:
    name = validate_model_name(call.args.required("name"))
    if call.args.values.get("tags") or call.args.text("description"):
        raise BadInput(
            "regctl keeps tags and descriptions on versions, not on a registered model",
            hint="give them to create_model_version / mlflow.register_model",
        )
    try:
        call.reg.model_state(name)
    except NotFound:
        now = int(time.time() * 1000)  # the model appears with its first version
        return {
            "registered_model": {
                "name": name,
                "creation_timestamp": now,
                "last_updated_timestamp": now,
            }
        }
    raise MlflowError(
        400, "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists."
    )


@route("registered-models/get", ["GET"], "read")
def get_model(call: Call) -> dict[str, Any]:
    return {"registered_model": model_doc(call, call.args.required("name"))}


@route("registered-models/search", ["GET"], "read")
def search_models(call: Call) -> dict[str, Any]:
    clauses = mlflow_filters.parse_filter(call.args.text("filter"), ("name", "tags"))
    limit = call.args.number("max_results", 100, 1000)
    only = mlflow_filters.exact_name(clauses)
    names = [only] if only else [m.name for m in call.reg.list_models()]
    found = []
    for name in names:
        if not mlflow_filters.matches([c for c in clauses if c.field == "name"], {"name": name}):
            continue
        try:
            doc = model_doc(call, name)
        except NotFound:
            continue
        if mlflow_filters.matches(clauses, doc):
            found.append(doc)
    keys = ("name", "creation_timestamp", "last_updated_timestamp", "timestamp")
    return _page(call, "registered_models", found, limit, ["name ASC"], keys)


@route("registered-models/update", ["PATCH"], "publish")
def update_model(call: Call) -> dict[str, Any]:
    name = call.args.required("name")
    doc = model_doc(call, name)
    wanted = call.args.text("description")
    if wanted is not None and wanted != doc["description"]:
        raise fixed(f"the description of {name}", "descriptions are given when publishing")
    return {"registered_model": doc}


@route("registered-models/set-tag", ["POST"], "publish")
def set_model_tag(call: Call) -> dict[str, Any]:
    name = call.args.required("name")
    call.reg.model_state(name)
    raise RuleViolation(
        f"regctl keeps tags on versions, not on the registered model {name}",
        hint=f"set_model_version_tag, or regctl tag {name} vN KEY=VALUE",
    )


@route("registered-models/delete-tag", ["DELETE"], "publish")
def delete_model_tag(call: Call) -> dict[str, Any]:
    call.reg.model_state(call.args.required("name"))
    call.args.required("key")
    return {}  # a registered model has no tags, so none is left to delete


@route("registered-models/rename", ["POST"], "promote")
def rename_model(call: Call) -> dict[str, Any]:
    name = call.args.required("name")
    call.reg.model_state(name)
    raise fixed(f"the name of {name}", "publish under the new name instead")


@route("registered-models/delete", ["DELETE"], "promote")
def delete_model(call: Call) -> dict[str, Any]:
    name = call.args.required("name")
    call.reg.model_state(name)
    raise RuleViolation(
        f"regctl never deletes a model ({name})",
        hint=f"archive its versions: regctl archive {name} vN",
    )


@route("registered-models/get-latest-versions", ["POST", "GET"], "read")
def latest(call: Call) -> dict[str, Any]:
    name = call.args.required("name")
    state = call.reg.model_state(name)
    found = docs.latest_versions(
        versions_of(call, name), call.args.many("stages"), state.latest.get(call.stages[-1])
    )
    return {"model_versions": found}


# ----------------------------------------------------------------- aliases
@route("registered-models/alias", ["GET"], "read")
def get_by_alias(call: Call) -> dict[str, Any]:
    name, alias = call.args.required("name"), call.args.required("alias")
    if alias.lower() == "latest":  # MLflow's: the newest version
        versions = call.reg.model_state(name).versions
        return {"model_version": version_doc(call, name, f":v{max(versions)}")}
    return {"model_version": version_doc(call, name, f"@{alias}")}


@route("registered-models/alias", ["POST"], "promote")
def set_alias(call: Call) -> dict[str, Any]:
    name, alias = call.args.required("name"), call.args.required("alias")
    number = call.args.version()
    state = call.reg.model_state(name)
    action = mlflow_aliases.on_set_alias(state, call.stages, alias, number)
    if action == "promote":
        call.reg.promote(name, version=number)
    elif action == "rollback":
        call.reg.rollback(name, to=number)
    elif action == "set":
        call.reg.set_alias(name, alias, number)
    return {}


@route("registered-models/alias", ["DELETE"], "promote")
def delete_alias(call: Call) -> dict[str, Any]:
    name, alias = call.args.required("name"), call.args.required("alias")
    if mlflow_aliases.on_delete_alias(call.reg.model_state(name), alias) == "remove":
        call.reg.remove_alias(name, alias)
    return {}


# ----------------------------------------------------------------- model versions
@route("model-versions/create", ["POST"], "publish")
def create_version(call: Call) -> dict[str, Any]:
    from registry_cli.server.mlflow_register import publish_source

    info = publish_source(call)
    return {"model_version": docs.model_version(info.to_json(), call.stages)}


@route("model-versions/get", ["GET"], "read")
def get_version(call: Call) -> dict[str, Any]:
    name, number = call.args.required("name"), call.args.version()
    return {"model_version": version_doc(call, name, f":v{number}")}


@route("model-versions/search", ["GET"], "read")
def search_versions(call: Call) -> dict[str, Any]:
    clauses = mlflow_filters.parse_filter(call.args.text("filter"))
    limit = call.args.number("max_results", 10000, 200000)
    only = mlflow_filters.exact_name(clauses)
    names = [only] if only else [m.name for m in call.reg.list_models()]
    names = [
        n
        for n in names
        if mlflow_filters.matches([c for c in clauses if c.field == "name"], {"name": n})
    ]
    found = []
    for name in names:
        try:
            found += [d for d in versions_of(call, name) if mlflow_filters.matches(clauses, d)]
        except NotFound:
            continue
    keys = ("name", "version_number", "creation_timestamp", "last_updated_timestamp", "timestamp")
    default = ["name ASC", "version_number DESC"]
    return _page(call, "model_versions", found, limit, default, keys)


@route("model-versions/update", ["PATCH"], "publish")
def update_version(call: Call) -> dict[str, Any]:
    name, number = call.args.required("name"), call.args.version()
    doc = version_doc(call, name, f":v{number}")
    wanted = call.args.text("description")
    if wanted is not None and wanted != doc["description"]:
        raise fixed(f"the description of {name}:v{number}", "a version's facts never change")
    return {"model_version": doc}


@route("model-versions/set-tag", ["POST"], "publish")
def set_version_tag(call: Call) -> dict[str, Any]:
    name, number = call.args.required("name"), call.args.version()
    value = call.args.values.get("value")
    call.reg.tag(name, number, {call.args.required("key"): "" if value is None else str(value)})
    return {}


@route("model-versions/delete-tag", ["DELETE"], "publish")
def delete_version_tag(call: Call) -> dict[str, Any]:
    name, number, key = call.args.required("name"), call.args.version(), call.args.required("key")
    tags = {t["key"] for t in version_doc(call, name, f":v{number}")["tags"]}
    if key in tags:  # as MLflow: deleting an absent tag changes nothing
        call.reg.tag(name, number, remove=[key])
    return {}


@route("model-versions/get-download-uri", ["GET"], "read")
def download_uri(call: Call) -> dict[str, Any]:
    name, number = call.args.required("name"), call.args.version()
    info = call.reg.get(f"{name}:v{number}", with_bundle=False)
    return {"artifact_uri": mlflow_artifacts.download_uri(call.base_url, info)}


@route("model-versions/transition-stage", ["POST"], "promote")
def transition(call: Call) -> dict[str, Any]:
    name, number = call.args.required("name"), call.args.version()
    stage = docs.canonical_stage(call.args.required("stage"))
    if call.args.flag("archive_existing_versions"):
        raise BadInput(
            "archive_existing_versions is not supported: regctl keeps the previous "
            "champion as @rollback",
            hint="archive a version with transition-stage Archived",
        )
    current = version_doc(call, name, f":v{number}")["current_stage"]
    action = mlflow_aliases.on_transition(call.reg.model_state(name), stage, current, number)
    if action == "promote":
        call.reg.promote(name, version=number)
    elif action == "archive":
        call.reg.archive(name, number, reason="MLflow transition-stage Archived")
    return {"model_version": version_doc(call, name, f":v{number}")}


@route("model-versions/delete", ["DELETE"], "promote")
def delete_version(call: Call) -> dict[str, Any]:
    name, number = call.args.required("name"), call.args.version()
    version_doc(call, name, f":v{number}")
    raise RuleViolation(
        f"regctl never deletes a version ({name}:v{number})",
        hint=f"archive it: transition-stage Archived, or regctl archive {name} v{number}",
    )


# ----------------------------------------------------------------- the rest
async def _no_such_endpoint(path: str) -> None:
    raise MlflowError(404, "ENDPOINT_NOT_FOUND", f"this server has no MLflow endpoint {path!r}")


for _prefix in PREFIXES:
    router.add_api_route(
        _prefix + "/{path:path}",
        _no_such_endpoint,
        methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        include_in_schema=False,
    )
router.include_router(mlflow_artifacts.router)


def _page(
    call: Call,
    key: str,
    found: list[dict[str, Any]],
    limit: int,
    default: list[str],
    keys: tuple[str, ...],
) -> dict[str, Any]:
    """One page of a search reply, ordered by the call's ``order_by`` (else ``default``)."""
    ordered = mlflow_filters.order(found, call.args.many("order_by"), default, keys)
    chunk, following = docs.page(ordered, limit, call.args.text("page_token"))
    out: dict[str, Any] = {key: chunk}
    if following:
        out["next_page_token"] = following
    return out
