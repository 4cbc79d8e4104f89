"""The ``mlflow:`` section: where MLflow sources and imports find a tracking server."""

from __future__ import annotations

from registry_cli.settings.engine import TEXT, Section, Setting

MLFLOW = Section(
    "mlflow",
    (Setting("tracking_uri", TEXT, None, "--tracking-uri", ("MLFLOW_TRACKING_URI",)),),
)
