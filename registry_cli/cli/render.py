"""Human renderings of core results (Rich). JSON output goes through ``to_json``."""

from __future__ import annotations

import json
from typing import Any

from registry_cli.cli.common import stdout_console
from registry_cli.core.types import ChangeResult, ModelSummary, VerifyReport, VersionInfo


def _kv(d: dict[str, Any]) -> str:
    return (
        ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items()) or "-"
    )


def models_table(models: list[ModelSummary], stages: tuple[str, ...]) -> None:
    from rich.table import Table

    console = stdout_console()
    if not models:
        console.print("no models yet (publish one with: regctl publish NAME PATH)")
        return
    table = Table(box=None, header_style="bold")
    table.add_column("model")
    table.add_column("versions", justify="right")
    table.add_column("latest")
    for stage in stages:
        table.add_column(f"{stage} LATEST")
    table.add_column("aliases")
    for m in models:
        table.add_row(
            m.name,
            str(m.versions),
            m.latest or "-",
            *[m.stages.get(s) or "-" for s in stages],
            ", ".join(f"@{a}={v}" for a, v in m.aliases.items()) or "-",
        )
    console.print(table)


def versions_table(name: str, versions: list[VersionInfo]) -> None:
    from rich.table import Table

    console = stdout_console()
    if not versions:
        console.print(f"{name} has no versions in that stage")
        return
    table = Table(title=name, box=None, header_style="bold", title_justify="left")
    for col in (
        "version",
        "status",
        "stages",
        "aliases",
        "metrics",
        "tags",
        "created",
        "derived from",
    ):
        table.add_column(col)
    for v in versions:
        table.add_row(
            v.vname,
            v.status,
            ", ".join(v.stages),
            ", ".join(f"@{a}" for a in v.aliases) or "-",
            _kv(v.metrics),
            _kv(v.tags),
            v.created_at[:19].replace("T", " "),
            v.derived_from or "-",
        )
    console.print(table)


def version_details(v: VersionInfo) -> None:
    from rich.table import Table

    console = stdout_console()
    table = Table(show_header=False, box=None, title=f"{v.name}:{v.vname}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("status", v.status),
        ("stages", ", ".join(v.stages) or "-"),
        ("aliases", ", ".join(f"@{a}" for a in v.aliases) or "-"),
        ("metrics", _kv(v.metrics)),
        ("params", _kv(v.params)),
        ("tags", _kv(v.tags)),
        ("description", v.description or "-"),
        ("created", f"{v.created_at} by {v.created_by}"),
        ("source", _kv(v.source)),
        ("derived from", v.derived_from or "-"),
        ("path", str(v.path)),
        ("preferred weight", v.preferred_weight),
        (
            "bundle",
            f"{v.bundle.get('size', '?')} bytes, sha256 {v.bundle.get('sha256', '?')}"
            if v.bundle
            else "-",
        ),
    ]
    if v.signature:
        rows.append(("signature", json.dumps(v.signature)))
    if v.manifest.get("license"):
        rows.append(("license", str(v.manifest["license"])))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    files = Table(box=None, header_style="bold")
    files.add_column("file")
    files.add_column("size", justify="right")
    files.add_column("sha256")
    for f in v.files:
        files.add_row(f["path"], str(f["size"]), f["sha256"][:16] + "…")
    console.print(files)
    if v.manifest.get("card"):
        console.print("\ncard:")
        console.out(str(v.manifest["card"]).rstrip("\n"), highlight=False)


def change(result: ChangeResult) -> None:
    """Plain text on purpose: lifecycle commands stay as fast as ``--help``."""
    import typer

    if result.noop:
        typer.echo(result.message or f"{result.action}: nothing changed")
        return
    parts = []
    for alias, (old, new) in (result.changed.get("aliases") or {}).items():
        parts.append(f"@{alias}: {old or '-'} → {new or '-'}")
    for stage, (old, new) in (result.changed.get("latest") or {}).items():
        parts.append(f"{stage} LATEST: {old or '-'} → {new or '-'}")
    if "tags" in result.changed:
        parts.append(
            f"tags: {_kv(result.changed['tags'].get('set') or {})}"
            + (
                f", removed {', '.join(result.changed['tags']['removed'])}"
                if result.changed["tags"].get("removed")
                else ""
            )
        )
    if result.changed.get("forced"):
        parts.append("gate overridden: " + "; ".join(result.changed.get("overridden", [])))
    head = (
        f"{result.action} {result.name}:{result.version}"
        if result.version
        else (f"{result.action} {result.name}")
    )
    typer.echo(head)
    for p in parts:
        typer.echo(f"  {p}")


def audit_table(entries: list[dict[str, Any]]) -> None:
    from rich.table import Table

    console = stdout_console()
    if not entries:
        console.print("the audit log is empty")
        return
    table = Table(box=None, header_style="bold")
    for col in ("time", "actor", "action", "model", "version", "details"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e["time"][:19].replace("T", " "),
            str(e["actor"]),
            e["action"],
            e.get("model") or "-",
            e.get("version") or "-",
            json.dumps(e.get("details") or {}, separators=(",", ":")),
        )
    console.print(table)


def verify_report(report: VerifyReport) -> None:
    console = stdout_console()
    if report.ok:
        console.print(f"ok: {report.checked} files checked, no problems")
        return
    console.print(f"{len(report.problems)} problem(s) in {report.checked} files checked:")
    for p in report.problems:
        where = f"{p.model}:{p.version}" if p.version else (p.model or "-")
        console.print(f"  {where}  {p.path}: {p.problem}", markup=False)
