"""``model-versions/create``: publish a new version from the source an MLflow client sends.

The source is what ``mlflow.register_model`` resolved: the run's artifact URI as the
tracking server has it (``mlflow-artifacts:/...``, ``s3://...``), a ``runs:/RUN/PATH``
or ``models:/NAME/N`` / ``models:/NAME@ALIAS`` URI, or MLflow 3's logged model
``models:/MODEL_ID``. Everything is fetched through the tracking server of the
server's config (``mlflow.tracking_uri``) and published as ``publish --from-mlflow``
does: the run's metrics and params, the client's tags and description, the source.
Paths on the server's own disk are refused.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from registry_cli.core.names import validate_model_name
from registry_cli.core.publishing import Produced
from registry_cli.errors import BadInput, NotFound, RemoteError
from registry_cli.formats import mlflow_source

if TYPE_CHECKING:
    from registry_cli.core.types import VersionInfo
    from registry_cli.server.mlflow_http import Call


def client_tags(raw: Any) -> dict[str, str]:
    """MLflow's ``[{"key", "value"}]`` as a dict."""
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(isinstance(t, dict) and "key" in t for t in raw):
        raise BadInput("tags must be a list of {key, value}")
    return {str(t["key"]): str(t.get("value", "")) for t in raw}


def kind_of(source: str) -> str:
    """``registered`` (runs:/, models:/NAME/N|@ALIAS), ``logged`` (models:/ID) or ``uri``."""
    if source.startswith("runs:/"):
        return "registered"
    if source.startswith("models:/"):
        rest = source[len("models:/") :].strip("/")
        return "registered" if "/" in rest or "@" in rest else "logged"
    scheme = urllib.parse.urlsplit(source).scheme
    if len(scheme) <= 1 or scheme == "file":  # "" or a Windows drive letter: a local path
        raise BadInput(
            f"source {source!r} is a path on this machine; the server does not read its own disk",
            hint="register a runs:/, models:/ or the run's artifact URI from the tracking server",
        )
    return "uri"


def _basename(uri: str) -> str:
    base = urllib.parse.urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]
    return base if mlflow_source.SAFE_NAME_RE.match(base) else "model"


def _run_facts(run_id: str | None, tracking: str) -> mlflow_source.Lookup:
    """The run's metrics, params and source facts (a lookup of ``runs:/RUN/model``)."""
    if not run_id:
        source = {"type": "mlflow", "tracking_uri": mlflow_source.redact(tracking)}
        return mlflow_source.Lookup("", "model", source, {}, {})
    ref = mlflow_source.parse_source(run_id, "model")
    return mlflow_source.lookup(ref, tracking)


def _logged_model(model_id: str, tracking: str) -> tuple[str, str | None]:
    """(name, source run) of MLflow 3's logged model ``model_id``."""
    with mlflow_source.mlflow_env(tracking):
        from mlflow import MlflowClient

        try:
            model = MlflowClient(tracking_uri=tracking).get_logged_model(model_id)
        except Exception as exc:
            if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(f"MLflow has no logged model {model_id!r}") from None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise RemoteError(f"MLflow refused logged model {model_id!r}: {first}") from None
    return model.name or "model", model.source_run_id or None


def lookup(source: str, run_id: str | None, tracking: str) -> mlflow_source.Lookup:
    kind = kind_of(source)
    if kind == "registered":
        found = mlflow_source.lookup(mlflow_source.parse_source(source), tracking)
    elif kind == "logged":
        model_id = source[len("models:/") :].strip("/")
        if not mlflow_source.RUN_ID_RE.match(model_id):
            raise BadInput(f"invalid logged model id in {source!r}")
        name, logged_run = _logged_model(model_id, tracking)
        found = _run_facts(run_id or logged_run, tracking)
        found.source.update(model_id=model_id, artifact_path=None)
        found.download_uri = source
        found.payload_name = name if mlflow_source.SAFE_NAME_RE.match(name) else "model"
    else:
        found = _run_facts(run_id, tracking)
        found.source["artifact_path"] = None
        found.download_uri, found.payload_name = source, _basename(source)
    found.source["uri"] = source
    if run_id:
        found.source["run_id"] = run_id
    return found


def publish_source(call: Call) -> VersionInfo:
    """Publish ``call``'s source as the next version of its model."""
    from registry_cli.formats.publish_sources import program_signature

    name = validate_model_name(call.args.required("name"))
    source = call.args.required("source").strip()
    kind_of(source)  # a local path is refused before anything else
    tags = client_tags(call.args.values.get("tags"))
    run_id = call.args.text("run_id")
    if run_id and not mlflow_source.RUN_ID_RE.match(run_id):
        raise BadInput(f"invalid run_id {run_id!r}")
    tracking = mlflow_source.resolve_tracking_uri(None, call.reg.config)
    found = lookup(source, run_id, tracking)
    with call.reg.scratch("mlflow") as folder:
        fetched = mlflow_source.download(found, tracking, folder)
        return call.reg.publish(
            name,
            [fetched.local_path],
            metrics=fetched.metrics,
            params=fetched.params,
            tags=tags,
            description=call.args.text("description"),
            signature=fetched.signature or program_signature([fetched.local_path]),
            produced=Produced(source=fetched.source),
        )
