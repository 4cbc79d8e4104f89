"""Read an SQLite stage registry: ``regctl import sqlite PATH/registry.db``.

The schema (tables ``models``, ``model_versions``, ``audit_logs``; inferred from
that system's notes, written down in docs/import.md) is checked before any
read of the rows: a file that is not SQLite, or a missing table or column, is
exit 2 naming it. The database is opened read-only. Versions are numbered
1, 2, 3 ... in the order they were created (their labels, like ``1.0.0``, are
kept in ``source``); tags (a JSON list or mapping) become tags, numbers in
``meta`` metrics and the rest params. The versions that were ever in
Production (from the audit trail) are promoted in the order they last entered
it, the current Production last (the champion). Audit rows are appended with
their original time and actor, marked ``details.imported_from``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from registry_cli.core.names import validate_model_name
from registry_cli.errors import BadInput
from registry_cli.importers import legacy
from registry_cli.importers.facts import iso_time, metrics_of, strings_of, tags_of
from registry_cli.importers.source import AuditRecord, SourceModel, SourceRegistry, SourceVersion

MAGIC = b"SQLite format 3\x00"
VERSION_TABLES = ("model_versions", "versions", "model_version")
AUDIT_TABLES = ("audit_logs", "audit_log", "audit")
TIME_COLUMNS = ("ts", "timestamp", "created_at", "time", "at")
DETAIL_COLUMNS = ("detail", "details", "payload", "extra", "meta", "message")


def _first(found: set[str], options: tuple[str, ...]) -> str | None:
    return next((o for o in options if o in found), None)


class _Schema:
    """The table and column names this database uses."""

    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        self.tables = {
            r[0]: {c[1] for c in conn.execute(f'PRAGMA table_info("{r[0]}")')} for r in rows
        }
        self.where = where
        self.models = self._table(("models",))
        self.versions = self._table(VERSION_TABLES)
        self._need(self.models, "id", "name")
        self._need(self.versions, "version", "stage")
        vcols = self.tables[self.versions]
        self.link = _first(vcols, ("model_id", "model_name"))
        if self.link is None:
            raise self._unknown(f"table {self.versions!r} has no 'model_id' column")
        self.url = _first(vcols, ("artifact_url", "artifact_uri", "url", "path"))
        if self.url is None:
            raise self._unknown(f"table {self.versions!r} has no 'artifact_url' column")
        self.audit = _first(set(self.tables), AUDIT_TABLES)
        if self.audit is not None:
            acols = self.tables[self.audit]
            self.audit_time = _first(acols, TIME_COLUMNS)
            self._need(self.audit, "action")
            if self.audit_time is None:
                raise self._unknown(f"table {self.audit!r} has no time column ('ts')")

    def _unknown(self, what: str) -> BadInput:
        return BadInput(
            f"{self.where}: unknown schema: {what}",
            hint="regctl reads the stage registry's models / model_versions / audit_logs "
            "tables (see docs/import.md)",
        )

    def _table(self, options: tuple[str, ...]) -> str:
        found = _first(set(self.tables), options)
        if found is None:
            have = ", ".join(sorted(self.tables)) or "none"
            raise self._unknown(f"no table {options[0]!r} (tables: {have})")
        return found

    def _need(self, table: str, *columns: str) -> None:
        for column in columns:
            if column not in self.tables[table]:
                raise self._unknown(f"table {table!r} has no {column!r} column")

    def col(self, table: str, name: str) -> str:
        return f'"{name}"' if name in self.tables[table] else "NULL"


def _json_value(raw: Any, where: str) -> Any:
    if raw is None or isinstance(raw, (dict, list)):
        return raw
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        if "," in text or text.strip().isidentifier():
            return [t.strip() for t in text.split(",") if t.strip()]
        raise BadInput(f"{where}: {text[:60]!r} is not JSON") from None


def _connect(path: Path) -> sqlite3.Connection:
    path = path.expanduser().absolute()
    if not path.is_file():
        raise BadInput(f"{path} is not a file", hint="give the path of registry.db")
    with open(path, "rb") as fh:
        if fh.read(16) != MAGIC:
            raise BadInput(f"{path} is not an SQLite database")
    try:
        return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BadInput(f"{path}: cannot open the database ({exc})") from None


def read(db: Path, stages: tuple[str, ...]) -> SourceRegistry:
    db = db.expanduser().absolute()
    conn = _connect(db)
    try:
        return _read(conn, db, stages)
    except sqlite3.Error as exc:
        raise BadInput(f"{db}: unreadable database ({exc})") from None
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, db: Path, stages: tuple[str, ...]) -> SourceRegistry:
    where = str(db)
    s = _Schema(conn, where)
    m, v = s.models, s.versions
    names: dict[Any, str] = {}
    owners: dict[str, str | None] = {}
    for mid, name, owner in conn.execute(
        f'SELECT "id", "name", {s.col(m, "owner")} FROM "{m}" ORDER BY "id"'
    ):
        try:
            validate_model_name(str(name))
        except BadInput as exc:
            raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None
        names[mid] = str(name)
        names[str(name)] = str(name)
        owners[str(name)] = str(owner) if owner else None
    models = {name: SourceModel(name=name, versions=[]) for name in owners}
    stage_by: dict[str, dict[str, str]] = {name: {} for name in owners}
    rows = conn.execute(
        f'SELECT "{s.link}", "version", "stage", "{s.url}", {s.col(v, "tags")}, '
        f'{s.col(v, "meta")}, {s.col(v, "created_at")} FROM "{v}" '
        f"ORDER BY {s.col(v, 'created_at')}, {s.col(v, 'id')}"
    ).fetchall()
    for link, label, stage, url, tags, meta, created in rows:
        name = names.get(link)
        label = str(label)
        here = f"{where}: {name}:{label}"
        if name is None:
            raise BadInput(f"{where}: version {label!r} belongs to no model ({link!r})")
        try:
            tag_map = tags_of(_json_value(tags, here))
            meta_doc = _json_value(meta, here) or {}
            created_at = iso_time(created)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"{here}: {exc}") from None
        if not isinstance(meta_doc, dict):
            raise BadInput(f"{here}: meta is not a JSON object")
        if url:
            fetch, problem, size = legacy.local_fetch(str(url), db.parent)
        else:
            fetch, problem, size = None, "no artifact URL", None
        models[name].versions.append(
            SourceVersion(
                label=label,
                identity=f"sqlite:{db}#{name}:{label}",
                source={
                    "type": "sqlite-registry",
                    "database": str(db),
                    "model": name,
                    "version": label,
                    "artifact_url": str(url) if url else None,
                },
                fetch=fetch,
                problem=problem,
                size=size,
                metrics=metrics_of(meta_doc),
                params={
                    k: x for k, x in strings_of(meta_doc).items() if k not in metrics_of(meta_doc)
                },
                tags=tag_map,
                created_at=created_at,
                created_by=owners.get(name),
            )
        )
        stage_by[name][label] = legacy.stage_of(stage, stages, here)
    released: dict[str, list[str]] = {name: [] for name in owners}
    if s.audit is not None:
        for record, name, to_stage in _audit(conn, s, names, db):
            models[name].audit.append(record)
            label = record.version_label
            if label and str(to_stage or "").lower() == "production":
                order = released[name]
                if label in order:
                    order.remove(label)
                order.append(label)
    for name, model in models.items():
        known = {x.label for x in model.versions}
        legacy.settle(
            model, stage_by[name], [x for x in released[name] if x in known], stages, where
        )
    return SourceRegistry(
        kind="sqlite-registry", display=f"sqlite {db}", models=list(models.values())
    )


def _audit(
    conn: sqlite3.Connection, s: _Schema, names: dict[Any, str], db: Path
) -> list[tuple[AuditRecord, str, Any]]:
    a = s.audit
    assert a is not None
    cols = s.tables[a]
    model_col = _first(cols, ("model_name", "model", "model_id"))
    detail_col = _first(cols, DETAIL_COLUMNS)
    rows = conn.execute(
        f'SELECT {s.col(a, "id")}, "{s.audit_time}", {s.col(a, "actor")}, "action", '
        f"{f'{chr(34)}{model_col}{chr(34)}' if model_col else 'NULL'}, {s.col(a, 'version')}, "
        f"{s.col(a, 'from_stage')}, {s.col(a, 'to_stage')}, "
        f"{f'{chr(34)}{detail_col}{chr(34)}' if detail_col else 'NULL'} "
        f'FROM "{a}" ORDER BY "{s.audit_time}", {s.col(a, "id")}'
    ).fetchall()
    out = []
    for n, (rid, ts, actor, action, model, version, from_stage, to_stage, detail) in enumerate(
        rows, start=1
    ):
        here = f"{db}: audit row {rid if rid is not None else n}"
        name = names.get(model)
        if name is None:
            continue  # an entry about no model here (or a deleted one)
        try:
            time = iso_time(ts)
            extra = _json_value(detail, here)
        except (TypeError, ValueError, BadInput):
            raise BadInput(f"{here}: unreadable time or detail") from None
        if time is None:
            raise BadInput(f"{here}: no time")
        details: dict[str, Any] = {}
        if from_stage is not None or to_stage is not None:
            details.update(from_stage=from_stage, to_stage=to_stage)
        if isinstance(extra, dict):
            details.update(extra)
        elif extra is not None:
            details["detail"] = extra
        record = AuditRecord(
            identity=f"sqlite:{db}#audit/{rid if rid is not None else n}",
            time=time,
            actor=str(actor or "unknown"),
            action=str(action),
            version_label=str(version) if version is not None else None,
            details=details,
        )
        out.append((record, name, to_stage))
    return out
