"""Fetch a model or artifact from an MLflow tracking server (docs/predictions.md).

Accepted sources: ``runs:/RUN_ID/PATH``, a bare ``RUN_ID`` with ``--artifact-path``,
``models:/NAME@ALIAS`` and ``models:/NAME/N``. The tracking URI comes from
``--tracking-uri``, ``$MLFLOW_TRACKING_URI`` or ``mlflow: {tracking_uri: ...}`` in
registry.yaml. Everything is checked before the first request; mlflow is
imported only when a fetch actually runs.

Errors: unreachable server → :class:`RemoteError` (exit 6); unknown run, model,
alias, version or artifact → :class:`NotFound` (exit 3).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.core.config import Config
from registry_cli.errors import BadInput, NotFound, RegctlError, RemoteError
from registry_cli.settings import MLFLOW

RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
SAFE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
KEY_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.:/-]")
URI_HINT = (
    "use runs:/RUN_ID/PATH, RUN_ID with --artifact-path, models:/NAME@ALIAS or models:/NAME/N"
)
# Fail fast when the server is down; a user's own setting of these wins.
FAIL_FAST_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


@dataclass(frozen=True)
class MlflowRef:
    """A parsed ``--from-mlflow`` source."""

    uri: str
    run_id: str | None = None
    artifact_path: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    model_alias: str | None = None


@dataclass
class FetchedArtifact:
    """What a fetch brought into the local folder, and the facts to record."""

    local_path: Path  # file or folder, named as it will appear under payload/
    source: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    signature: dict[str, Any] | None = None


def validate_artifact_path(path: str) -> str:
    """A relative, '/'-separated path inside the run's artifacts; no '..', nothing absolute."""
    text = path.strip()
    if not text:
        raise BadInput("the MLflow artifact path is empty", hint=URI_HINT)
    if text.startswith("/") or "\\" in text or "\0" in text or re.match(r"[A-Za-z]:", text):
        raise BadInput(f"artifact path {path!r} must be relative to the run's artifacts")
    text = text.rstrip("/")
    for seg in text.split("/"):
        if seg in ("", ".", "..") or urllib.parse.unquote(seg) in (".", ".."):
            raise BadInput(
                f"artifact path {path!r} may not contain {seg or 'empty'!r} segments",
                hint="name the artifact as logged, e.g. checkpoints/best.pth",
            )
    return text


def parse_source(uri: str, artifact_path: str | None = None) -> MlflowRef:
    """Parse and check a ``--from-mlflow`` value (no network)."""
    text = uri.strip()
    if text.startswith("runs:/"):
        rest = text[len("runs:/") :].lstrip("/")
        run_id, _, path = rest.partition("/")
        if artifact_path is not None:
            if path and validate_artifact_path(path) != validate_artifact_path(artifact_path):
                raise BadInput(f"{uri} already names an artifact path; drop --artifact-path")
            path = artifact_path
        if not RUN_ID_RE.match(run_id):
            raise BadInput(f"invalid run id in {uri!r}", hint=URI_HINT)
        if not path:
            raise BadInput(f"{uri} names no artifact path", hint=URI_HINT)
        return MlflowRef(uri=text, run_id=run_id, artifact_path=validate_artifact_path(path))
    if text.startswith("models:/"):
        if artifact_path is not None:
            raise BadInput("--artifact-path applies to runs, not to models:/ URIs")
        rest = text[len("models:/") :]
        if "@" in rest:
            name, _, alias = rest.rpartition("@")
            if not name or not alias or "/" in alias:
                raise BadInput(f"invalid model URI {uri!r}", hint=URI_HINT)
            return MlflowRef(uri=text, model_name=name, model_alias=alias)
        name, _, version = rest.rpartition("/")
        if not name or not version.isdigit() or int(version) < 1:
            raise BadInput(f"invalid model URI {uri!r}", hint=URI_HINT + " (N is a version number)")
        return MlflowRef(uri=text, model_name=name, model_version=str(int(version)))
    if ":" in text or "/" in text:
        raise BadInput(f"unsupported MLflow source {uri!r}", hint=URI_HINT)
    if not RUN_ID_RE.match(text):
        raise BadInput(f"invalid run id {uri!r}", hint=URI_HINT)
    if artifact_path is None:
        raise BadInput(
            f"a bare run id needs --artifact-path (e.g. runs:/{text}/model)", hint=URI_HINT
        )
    return MlflowRef(
        uri=f"runs:/{text}/{validate_artifact_path(artifact_path)}",
        run_id=text,
        artifact_path=validate_artifact_path(artifact_path),
    )


def resolve_tracking_uri(explicit: str | None, config: Config) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ``mlflow.tracking_uri``."""
    uri = MLFLOW.resolve({"tracking_uri": explicit or None}, config.section("mlflow"))[
        "tracking_uri"
    ]
    if not uri:
        raise BadInput(
            "no MLflow tracking URI",
            hint="pass --tracking-uri http://HOST:5000, set MLFLOW_TRACKING_URI, "
            "or set mlflow.tracking_uri in registry.yaml",
        )
    return uri


def redact(uri: str) -> str:
    """The tracking URI without a password, for the manifest and messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


@contextlib.contextmanager
def mlflow_env(tracking_uri: str) -> Iterator[None]:
    """Point mlflow at ``tracking_uri`` (registry too) and make it fail fast, for this block.

    Some mlflow code paths read the default registry URI instead of the one passed
    in (and would create ``./mlflow.db``), so the environment is set as well.
    """
    wanted = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri}
    wanted.update({k: os.environ.get(k, v) for k, v in FAIL_FAST_ENV.items()})
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _is_unreachable(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        mod = type(seen).__module__
        if isinstance(seen, (ConnectionError, TimeoutError)) or (
            mod.startswith(("requests", "urllib3"))
            and type(seen).__name__
            in (
                "ConnectionError",
                "ConnectTimeout",
                "ReadTimeout",
                "Timeout",
                "MaxRetryError",
                "NewConnectionError",
            )
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Max retries exceeded" in str(exc)


@contextlib.contextmanager
def _translated(what: str, tracking_uri: str) -> Iterator[None]:
    """Turn mlflow's exceptions into regctl's (exit 3 / 6)."""
    try:
        yield
    except RegctlError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if _is_unreachable(exc):
            raise RemoteError(
                f"MLflow tracking server {redact(tracking_uri)} is unreachable ({what})",
                hint="check --tracking-uri / MLFLOW_TRACKING_URI and that the server is running",
            ) from None
        code = getattr(exc, "error_code", None)
        if code == "RESOURCE_DOES_NOT_EXIST" or (
            code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower()
        ):
            raise NotFound(f"MLflow has no {what}: {first}") from None
        if code is not None:
            raise RemoteError(f"MLflow refused {what}: {first}") from None
        raise


def _payload_name(ref: MlflowRef, model_source: str | None) -> str:
    """The name the artifact gets under ``payload/`` (its basename)."""
    if ref.artifact_path:
        return ref.artifact_path.rsplit("/", 1)[-1]
    if model_source and not model_source.startswith("models:/"):
        base = urllib.parse.urlsplit(model_source).path.rstrip("/").rsplit("/", 1)[-1]
        if SAFE_NAME_RE.match(base):
            return base
    return "model"


def _clean_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[_clean_key(key)] = number
    return out


def _clean_key(key: str) -> str:
    """MLflow keys may hold spaces and more; regctl keys are ``[A-Za-z0-9_.:/-]``."""
    cleaned = KEY_BAD_CHARS.sub("_", str(key))[:128] or "_"
    return cleaned if re.match(r"[A-Za-z0-9_]", cleaned) else "_" + cleaned[:127]


def mlmodel_signature(folder: Path) -> dict[str, Any] | None:
    """A tensor-based MLflow signature in ``folder/MLmodel``, as a regctl signature."""
    import json

    import yaml

    mlmodel = folder / "MLmodel"
    if not folder.is_dir() or not mlmodel.is_file():
        return None
    try:
        doc = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
        raw = (doc.get("signature") or {}).get("inputs")
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except (OSError, ValueError, yaml.YAMLError, AttributeError):
        return None
    if not isinstance(specs, list) or not specs:
        return None
    inputs = []
    for spec in specs:
        tensor = spec.get("tensor-spec") if isinstance(spec, dict) else None
        if spec.get("type") != "tensor" or not isinstance(tensor, dict):
            return None  # column-based signatures have no shape to check
        shape = [None if (not isinstance(d, int) or d < 0) else d for d in tensor.get("shape", [])]
        inputs.append({"shape": shape, "dtype": str(tensor.get("dtype", "float32"))})
    return {"inputs": inputs, "batch_dim": 0, "source": "mlflow"}


@dataclass
class Lookup:
    """A source resolved on the server: what to download and the facts to record."""

    download_uri: str
    payload_name: str
    source: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, str]


def lookup(ref: MlflowRef, tracking_uri: str) -> Lookup:
    """Resolve ``ref`` on the server (model version, run facts); nothing touches disk.

    An unreachable server (exit 6) or an unknown run/model/alias (exit 3) fails here.
    """
    with mlflow_env(tracking_uri):
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        source: dict[str, Any] = {
            "type": "mlflow",
            "tracking_uri": redact(tracking_uri),
            "uri": ref.uri,
        }
        model_source = None
        run_id = ref.run_id
        if ref.model_name is not None:
            name = ref.model_name
            what = f"model {name!r} " + (
                f"alias {ref.model_alias!r}" if ref.model_alias else f"version {ref.model_version}"
            )
            with _translated(what, tracking_uri):
                if ref.model_alias:
                    mv = client.get_model_version_by_alias(name, ref.model_alias)
                else:
                    mv = client.get_model_version(name, str(ref.model_version))
            run_id = mv.run_id or None
            model_source = mv.source
            source.update(
                model_name=name,
                model_version=int(mv.version),
                model_alias=ref.model_alias,
                model_source=model_source,
            )
            if model_source and model_source.startswith(f"runs:/{run_id}/"):
                source["artifact_path"] = model_source[len(f"runs:/{run_id}/") :] or None
            else:
                source["artifact_path"] = None
            with _translated(what, tracking_uri):  # the version's own files: aliases move
                download_uri = client.get_model_version_download_uri(name, mv.version)
        else:
            download_uri = f"runs:/{ref.run_id}/{ref.artifact_path}"
            source["artifact_path"] = ref.artifact_path
        source["run_id"] = run_id
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        if run_id:
            with _translated(f"run {run_id}", tracking_uri):
                run = client.get_run(run_id)
            metrics = _clean_metrics(run.data.metrics)
            params = {_clean_key(k): str(v) for k, v in run.data.params.items()}
    return Lookup(download_uri, _payload_name(ref, model_source), source, metrics, params)


def download(found: Lookup, tracking_uri: str, workdir: Path) -> FetchedArtifact:
    """Download a looked-up artifact into ``workdir/source/<payload name>``."""
    with mlflow_env(tracking_uri):
        import mlflow

        download_dir = workdir / "download"
        download_dir.mkdir()
        with _translated(f"artifact {found.download_uri}", tracking_uri):
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=found.download_uri,
                    dst_path=str(download_dir),
                    tracking_uri=tracking_uri,
                    registry_uri=tracking_uri,
                )
            )
    named = workdir / "source" / found.payload_name
    named.parent.mkdir()
    os.rename(local, named)
    return FetchedArtifact(
        local_path=named,
        source=found.source,
        metrics=found.metrics,
        params=found.params,
        signature=mlmodel_signature(named),
    )
