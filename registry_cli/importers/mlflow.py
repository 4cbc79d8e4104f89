"""Read an MLflow model registry: ``regctl import mlflow://HOST:PORT [--model NAME]...``.

Every version of each registered model (or the named ones), in version order.
Each version's files, run metrics and params come through the same lookup and
download as ``publish --from-mlflow models:/NAME/N`` (so the recorded
``source`` is the same, ``uri`` = ``models:/NAME/N``); its tags, description,
time and author from the model version. Lifecycle: legacy stage Staging →
the first stage, Production → the last stage (the newest Production version is
the champion unless the ``champion`` alias says otherwise), Archived →
archived; aliases keep their names (``candidate``, ``champion``, ``rollback``
and user aliases). mlflow is imported only here, when an import runs.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from registry_cli.core.config import Config
from registry_cli.core.names import RESERVED_ALIASES, validate_alias, validate_model_name
from registry_cli.errors import BadInput, NotFound, RegctlError, RemoteError
from registry_cli.formats import mlflow_source
from registry_cli.importers.facts import iso_time, metrics_of, strings_of
from registry_cli.importers.source import (
    Fetch,
    Fetched,
    SourceModel,
    SourceRegistry,
    SourceVersion,
    Unfetchable,
    chain_promotions,
)

DEFAULT_PORT = 5000
PARALLEL_FETCHES = 4
UNREACHABLE = ("Max retries exceeded", "NewConnectionError", "Connection refused", "timed out")


def tracking_uri_of(location: str | None, explicit: str | None, config: Config) -> str:
    """``--tracking-uri`` wins; else ``mlflow://HOST[:PORT]`` means ``http://HOST:PORT``;
    a bare ``mlflow`` uses ``$MLFLOW_TRACKING_URI`` or ``mlflow.tracking_uri``."""
    if explicit:
        return mlflow_source.resolve_tracking_uri(explicit, config)
    if location is None or location == "mlflow":
        return mlflow_source.resolve_tracking_uri(None, config)
    parts = urllib.parse.urlsplit(location)
    if parts.password is not None:
        raise BadInput(
            "a password inside the mlflow:// URL is refused",
            hint="set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead",
        )
    if not parts.hostname:
        raise BadInput(f"no host in {location!r}", hint="write mlflow://HOST:PORT")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise BadInput(f"invalid port in {location!r}") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{port}{parts.path.rstrip('/')}"


@contextlib.contextmanager
def _remote(what: str, tracking_uri: str) -> Iterator[None]:
    try:
        yield
    except RegctlError:
        raise
    except Exception as exc:
        code = getattr(exc, "error_code", None)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        where = mlflow_source.redact(tracking_uri)
        if any(m in str(exc) for m in UNREACHABLE) or isinstance(exc, ConnectionError):
            raise RemoteError(
                f"MLflow tracking server {where} is unreachable ({what})",
                hint="check the address and that the server is running",
            ) from None
        if code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(f"MLflow has no {what}: {first}") from None
        if code is not None:
            raise RemoteError(f"MLflow at {where} refused {what}: {first}") from None
        raise RemoteError(
            f"MLflow tracking server {where} failed or is unreachable ({what}): {first}",
            hint="check the address and that the server is running",
        ) from None


def _payload_files(local: Path) -> list[tuple[Path, str]]:
    if local.is_file():
        return [(local, local.name)]
    out: list[tuple[Path, str]] = []
    for top, _dirs, files in os.walk(local):
        for f in sorted(files):
            path = Path(top) / f
            if path.is_file() and not path.is_symlink():
                out.append((path, f"{local.name}/{path.relative_to(local).as_posix()}"))
    return out


def _payload_name(model_source: str | None, run_id: str | None) -> str:
    """The artifact's name under ``payload/``, as ``publish --from-mlflow`` names it."""
    if model_source and run_id and model_source.startswith(f"runs:/{run_id}/"):
        base = model_source[len(f"runs:/{run_id}/") :].rstrip("/").rsplit("/", 1)[-1]
    elif model_source and not model_source.startswith("models:/"):
        base = urllib.parse.urlsplit(model_source).path.rstrip("/").rsplit("/", 1)[-1]
    else:
        base = ""
    return base if mlflow_source.SAFE_NAME_RE.match(base) else "model"


RunFacts = tuple[dict[str, float], dict[str, str]]


def _runs(client: Any, run_ids: list[str]) -> dict[str, RunFacts]:
    """Metrics and params of many runs in a few requests (a version's own lookup
    falls back to one ``get_run`` when this cannot answer)."""
    from mlflow.entities import ViewType

    wanted = sorted({r for r in run_ids if r and mlflow_source.RUN_ID_RE.match(r)})
    out: dict[str, RunFacts] = {}
    if not wanted:
        return out
    try:
        experiments: list[str] = []
        token = None
        while True:
            page = client.search_experiments(
                view_type=ViewType.ALL, max_results=1000, page_token=token
            )
            experiments.extend(e.experiment_id for e in page)
            token = page.token
            if not token:
                break
        batches = [
            (experiments[e : e + 100], wanted[i : i + 100])
            for e in range(0, len(experiments), 100)
            for i in range(0, len(wanted), 100)
        ]
        for exp_ids, run_ids in batches:  # requests of bounded size
            chunk = ", ".join(f"'{r}'" for r in run_ids)
            token = None
            while True:
                page = client.search_runs(
                    exp_ids,
                    f"attributes.run_id IN ({chunk})",
                    run_view_type=ViewType.ALL,
                    max_results=1000,
                    page_token=token,
                )
                for run in page:
                    out[run.info.run_id] = (
                        metrics_of(run.data.metrics),
                        strings_of(run.data.params),
                    )
                token = page.token
                if not token:
                    break
    except Exception:  # an older server without this search: one get_run per version
        return {}
    return out


def _fetcher(client: Any, mv: Any, runs: dict[str, RunFacts], tracking_uri: str) -> Fetch:
    name, label, run_id = mv.name, str(int(mv.version)), mv.run_id or None
    uri = f"models:/{name}/{label}"

    def fetch(folder: Path) -> Fetched:
        try:
            return _fetch(folder)
        except NotFound as exc:
            raise Unfetchable(exc.message) from None

    def _fetch(folder: Path) -> Fetched:
        import mlflow

        with _remote(f"the download URI of {uri}", tracking_uri):
            download_uri = client.get_model_version_download_uri(name, label)
        facts = runs.get(run_id) if run_id else ({}, {})
        if facts is None:
            with _remote(f"run {run_id}", tracking_uri):
                run = client.get_run(run_id)
            facts = (metrics_of(run.data.metrics), strings_of(run.data.params))
        target = folder / "download"
        target.mkdir()
        with _remote(f"the artifacts of {uri}", tracking_uri):
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=download_uri,
                    dst_path=str(target),
                    tracking_uri=tracking_uri,
                    registry_uri=tracking_uri,
                )
            )
        named = folder / "source" / _payload_name(mv.source, run_id)
        named.parent.mkdir()
        os.rename(local, named)
        files = _payload_files(named)
        if not files:
            raise Unfetchable(f"{uri} has no artifact files")
        artifact_path = None
        if mv.source and run_id and mv.source.startswith(f"runs:/{run_id}/"):
            artifact_path = mv.source[len(f"runs:/{run_id}/") :] or None
        return Fetched(
            files=files,
            move=True,
            metrics=facts[0],
            params=facts[1],
            source={
                "type": "mlflow",
                "tracking_uri": mlflow_source.redact(tracking_uri),
                "uri": uri,
                "model_name": name,
                "model_version": int(label),
                "model_alias": None,
                "model_source": mv.source,
                "artifact_path": artifact_path,
                "run_id": run_id,
            },
            signature=mlflow_source.mlmodel_signature(named),
        )

    return fetch


def _model(client: Any, rm: Any, tracking_uri: str, stages: tuple[str, ...]) -> SourceModel:
    name = rm.name
    with _remote(f"the versions of {name!r}", tracking_uri):
        found, token = [], None
        while True:
            page = client.search_model_versions(f"name='{name}'", page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                break
    mvs = sorted(found, key=lambda mv: int(mv.version))
    runs = _runs(client, [mv.run_id for mv in mvs])
    model = SourceModel(name=name, versions=[], explicit_candidate=True)
    production: list[str] = []
    archived: set[str] = set()
    for mv in mvs:
        label = str(int(mv.version))
        stage = (mv.current_stage or "None").lower()
        version = SourceVersion(
            label=label,
            identity=f"models:/{name}/{label}",
            source={"type": "mlflow", "tracking_uri": mlflow_source.redact(tracking_uri)},
            fetch=_fetcher(client, mv, runs, tracking_uri),
            tags=strings_of(dict(mv.tags or {})),
            description=mv.description or None,
            created_at=iso_time(mv.creation_timestamp),
            created_by=mv.user_id or None,
            archived=stage == "archived",
        )
        status = str(mv.status or "READY").upper()
        if status != "READY":
            version.fetch, version.problem = None, f"MLflow registration status is {status}"
        model.versions.append(version)
        if stage == "production":
            production.append(label)
        if stage == "archived":
            archived.add(label)
    aliases = {str(a): str(int(v)) for a, v in dict(rm.aliases or {}).items()}
    champion = aliases.get("champion") or (production[-1] if production else None)
    rollback = aliases.get("rollback")
    if len(stages) > 1:
        order = [v for v in production if v not in (champion, rollback)]
        order += [v for v in (rollback, champion) if v is not None and v not in order]
        model.promotions[stages[-1]] = [v for v in order if v not in archived]
        chain_promotions(model, stages)
    candidate = aliases.get("candidate")
    model.candidate = candidate if candidate not in archived else None
    for alias, label in aliases.items():
        if alias in RESERVED_ALIASES or label in archived:
            continue
        try:
            model.aliases[validate_alias(alias)] = label
        except BadInput:
            model.aliases.pop(alias, None)
    return model


def read(tracking_uri: str, names: list[str], stages: tuple[str, ...]) -> SourceRegistry:
    """Every registered model (or the named ones) with its versions; no artifact yet.

    mlflow's environment stays set until the registry's ``close()`` (fetch threads
    share it)."""
    stack = contextlib.ExitStack()
    stack.enter_context(mlflow_source.mlflow_env(tracking_uri))
    try:
        found = _read(tracking_uri, names, stages)
    except BaseException:
        stack.close()
        raise
    found.close = stack.close
    return found


def _read(tracking_uri: str, names: list[str], stages: tuple[str, ...]) -> SourceRegistry:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    models = []
    if names:
        for name in names:
            with _remote(f"registered model {name!r}", tracking_uri):
                models.append(client.get_registered_model(name))
    else:
        with _remote("the registered models", tracking_uri):
            token = None
            while True:
                page = client.search_registered_models(max_results=1000, page_token=token)
                models.extend(page)
                token = page.token
                if not token:
                    break
    notes = []
    for rm in models:
        validate_model_name(rm.name)
        for alias in dict(rm.aliases or {}):
            if alias not in RESERVED_ALIASES:
                try:
                    validate_alias(alias)
                except BadInput:
                    notes.append(f"{rm.name}: alias {alias!r} is not a valid regctl alias; dropped")
    ordered = sorted(models, key=lambda m: m.name)
    return SourceRegistry(
        kind="mlflow",
        display=f"MLflow {mlflow_source.redact(tracking_uri)}",
        models=[_model(client, rm, tracking_uri, stages) for rm in ordered],
        parallel_fetches=PARALLEL_FETCHES,
        notes=notes,
    )
