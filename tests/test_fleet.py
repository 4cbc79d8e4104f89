"""Fleet reports and status (docs/fleet.md): validation, idempotence, the store on both
root kinds with several writers, the API's scopes, and ``regctl fleet status|ingest``."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.fleet import Fleet
from registry_cli.core.fleet_store import FleetStore
from registry_cli.core.tokens import Tokens
from registry_cli.errors import BadInput, NotFound


@pytest.fixture(params=["folder", "s3"])
def any_root(request, tmp_path):
    if request.param == "s3":
        return request.getfixturevalue("s3_root")
    return tmp_path / "registry"


def published(root, model_file: Path, name: str = "demo", versions: int = 2) -> ModelRegistry:
    reg = ModelRegistry(root)
    reg.init()
    for _ in range(versions):
        reg.publish(name, [model_file])
        reg.promote(name)
    return reg


def report(device: str = "box1", **kw) -> dict:
    doc = {
        "report_id": uuid.uuid4().hex,
        "device": device,
        "ring": "canary",
        "model": "demo",
        "version": "v2",
        "manifest_sha256": None,
        "state": "healthy",
        "detail": None,
    }
    doc.update(kw)
    return doc


def devices(reg: ModelRegistry, name: str = "demo") -> dict[str, dict]:
    return {d["device"]: d for d in FleetStore(reg.store).devices(name)}


# ---------------------------------------------------------------- the core
@pytest.mark.parametrize(
    "change, needle",
    [
        ({"state": "sleeping"}, "unknown state"),
        ({"device": None}, "no device"),
        ({"device": "../x"}, "invalid device"),
        ({"detail": "x" * 5000}, "detail is"),
        ({"ring": "bad ring"}, "invalid ring"),
        ({"extra": 1}, "unknown report key"),
        ({"version": None}, "needs a version"),
        ({"time": "yesterday"}, "invalid time"),
        ({"manifest_sha256": "abc"}, "manifest_sha256"),
    ],
)
def test_bad_reports_are_refused_and_stored_nowhere(tmp_path, model_file, change, needle):
    reg = published(tmp_path / "registry", model_file)
    fleet = Fleet(reg)
    good = report("ok-box")
    with pytest.raises(BadInput, match=needle):
        fleet.ingest([good, report(**change)])  # one bad report refuses the batch
    assert devices(reg) == {}
    assert not (tmp_path / "registry" / "fleet").exists() or not list(
        (tmp_path / "registry" / "fleet").rglob("*.json")
    )


def test_reports_for_an_unknown_model_are_404(tmp_path, model_file):
    reg = published(tmp_path / "registry", model_file)
    with pytest.raises(NotFound):
        Fleet(reg).ingest(report(model="nope"))


def test_reports_are_idempotent_and_late_ones_do_not_win(any_root, model_file):
    reg = published(any_root, model_file)
    fleet = Fleet(reg)
    first = report(time="2026-01-01T00:00:00Z", state="pulled")
    assert fleet.ingest(first) == {"accepted": 1, "duplicates": 0}
    assert fleet.ingest(first) == {"accepted": 0, "duplicates": 1}
    newer = report(time="2026-01-01T00:05:00Z", state="healthy")
    older = report(time="2026-01-01T00:01:00Z", state="unhealthy")  # from an outbox
    assert fleet.ingest([newer, older]) == {"accepted": 2, "duplicates": 0}
    doc = devices(reg)["box1"]
    assert doc["state"] == "healthy" and doc["time"] == "2026-01-01T00:05:00.000Z"
    assert doc["since"] == "2026-01-01T00:05:00.000Z"
    assert doc["version_since"] == "2026-01-01T00:00:00.000Z"
    assert {first["report_id"], newer["report_id"], older["report_id"]} <= set(doc["seen"])


def test_several_writers_lose_no_report(any_root, model_file):
    reg = published(any_root, model_file)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            fleet = Fleet(ModelRegistry(any_root))  # its own store, like another process
            for n in range(8):
                fleet.ingest(report("shared", detail=f"{index}-{n}"))
                fleet.ingest(report(f"own-{index}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    found = devices(reg)
    assert found["shared"]["reports"] == 32  # every one merged, none overwritten
    assert len(found["shared"]["seen"]) == 32
    assert {f"own-{i}" for i in range(4)} <= set(found)
    assert all(found[f"own-{i}"]["reports"] == 8 for i in range(4))


def test_status_counts_versions_stragglers_and_failures(tmp_path, model_file):
    reg = published(tmp_path / "registry", model_file)
    reg.set_alias("demo", "ring-canary", 2)
    fleet = Fleet(reg)
    fleet.ingest(
        [
            report("c1"),
            report("c2", state="unhealthy", detail="latency"),
            report("p1", ring="plant-a", version="v1", time="2026-01-01T00:00:00Z"),
            report("p2", ring="plant-a", version="v2"),
        ]
    )
    doc = fleet.status("demo")
    (model,) = doc["models"]
    rings = {r["ring"]: r for r in model["rings"]}
    assert rings["canary"]["target"] == "v2" and rings["plant-a"]["target"] == "v2"  # champion
    assert rings["canary"]["failures"] == 1
    assert rings["canary"]["failed_devices"][0]["detail"] == "latency"
    assert [(v["version"], v["devices"]) for v in rings["plant-a"]["versions"]] == [
        ("v1", 1),
        ("v2", 1),
    ]
    assert rings["plant-a"]["stragglers"] == 1
    assert rings["plant-a"]["straggler_devices"][0]["device"] == "p1"
    only = fleet.status("demo", ring="canary")["models"][0]["rings"]
    assert [r["ring"] for r in only] == ["canary"]


# ---------------------------------------------------------------- the CLI
def test_cli_ingest_and_status(cli, root, model_file, tmp_path):
    published(root, model_file)
    good = tmp_path / "reports.jsonl"
    good.write_text("\n".join(json.dumps(report(f"d{i}")) for i in range(3)) + "\n")
    res = cli("fleet", "ingest", str(good))
    assert res.exit_code == 0 and "3 report(s) stored" in res.stdout
    assert "3 already known" in cli("fleet", "ingest", str(good)).stdout
    res = cli("fleet", "status", "demo", "--json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["models"][0]["devices"] == 3
    res = cli("fleet", "status")
    assert "canary" in res.stdout and "v2:3" in res.stdout


def test_cli_ingest_refuses_a_bad_file_whole(cli, root, model_file, tmp_path):
    reg = published(root, model_file)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(report("a")) + "\n" + json.dumps(report("b", state="zzz")) + "\n")
    res = cli("fleet", "ingest", str(bad))
    assert res.exit_code == 2
    assert "report 2" in res.stderr and "unknown state" in res.stderr
    assert "Traceback" not in res.stderr
    assert devices(reg) == {}
    res = cli("fleet", "ingest", str(tmp_path / "missing.jsonl"))
    assert res.exit_code == 2 and res.stderr.startswith("error: ")
    assert cli("fleet", "status", "nope").exit_code == 3
    assert cli("fleet", "status", "--stale", "soon").exit_code == 2


# ---------------------------------------------------------------- the API, in process
@pytest.fixture
def api(tmp_path, model_file):
    from fastapi.testclient import TestClient

    from registry_cli.core.config import Config
    from registry_cli.httpapp import create_app
    from registry_cli.server.context import ServerContext

    root = tmp_path / "registry"
    reg = published(root, model_file)
    book = Tokens(reg.store, reg.states, "setup")
    secrets = {s: book.create(f"tok-{s}", [s]).secret for s in ("read", "report", "promote")}
    ctx = ServerContext(root, Config(), auth_delay_s=0)
    with TestClient(create_app(ctx)) as client:
        client.reg, client.secrets = reg, secrets  # type: ignore[attr-defined]
        yield client


def _auth(api, scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.secrets[scope]}"}


def test_api_reports_need_the_report_scope(api):
    one = report()
    for scope in ("read", "promote"):
        reply = api.post("/api/v1/fleet/reports", json=one, headers=_auth(api, scope))
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "forbidden"
    assert api.post("/api/v1/fleet/reports", json=one).status_code == 401
    assert devices(api.reg) == {}
    reply = api.post("/api/v1/fleet/reports", json=one, headers=_auth(api, "report"))
    assert reply.status_code == 200 and reply.json() == {"accepted": 1, "duplicates": 0}
    again = api.post("/api/v1/fleet/reports", json=[one], headers=_auth(api, "report"))
    assert again.json() == {"accepted": 0, "duplicates": 1}


def test_api_report_scope_reads_but_changes_nothing(api):
    hdr = _auth(api, "report")
    assert api.get("/api/v1/models", headers=hdr).status_code == 200
    assert api.get("/api/v1/fleet/status", headers=hdr).status_code == 200
    assert api.post("/api/v1/models/demo/-/rollback", headers=hdr).status_code == 403
    body = {"version": "v1", "rings": ["canary"]}
    assert api.post("/api/v1/models/demo/-/rollout", json=body, headers=hdr).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        report(state="sleeping"),
        report(device=None),
        report(detail="x" * 5000),
        [report("fine"), report(state="nope")],
        [],
    ],
)
def test_api_bad_reports_are_400_and_stored_nowhere(api, body):
    reply = api.post("/api/v1/fleet/reports", json=body, headers=_auth(api, "report"))
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "bad_input"
    assert devices(api.reg) == {}


def test_api_body_that_is_not_json_is_400(api):
    reply = api.post("/api/v1/fleet/reports", content=b"{not json", headers=_auth(api, "report"))
    assert reply.status_code == 400


def test_api_status_matches_the_cli_document(api):
    api.post("/api/v1/fleet/reports", json=[report("a"), report("b")], headers=_auth(api, "report"))
    doc = api.get("/api/v1/fleet/status?name=demo&stale=2h", headers=_auth(api, "read")).json()
    assert doc["stale_s"] == 7200 and doc["models"][0]["devices"] == 2
    assert api.get("/api/v1/fleet/status?stale=x", headers=_auth(api, "read")).status_code == 400


def test_status_on_a_folder_root_follows_no_link_out_of_the_root(tmp_path, model_file):
    reg = published(tmp_path / "registry", model_file)
    Fleet(reg).ingest(report("real"))
    outside = tmp_path / "secret.json"
    outside.write_text(json.dumps({"format_version": 1, "device": "leak"}))
    folder = tmp_path / "registry" / "fleet" / "models" / "demo" / "-" / "devices"
    (folder / "leak.json").symlink_to(outside)
    assert set(devices(reg)) == {"real"}
