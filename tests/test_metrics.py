"""``GET /metrics`` (Prometheus text), ``/api/v1/health`` and ``--log-format json`` (see
docs/operations.md). In-process apps for the counters; a real serve-registry for logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from registry_cli import ModelRegistry
from registry_cli.core.tokens import Tokens
from registry_cli.server.launch import ServeRegistryProcess
from registry_cli.server.logging_json import redact, safe_query
from registry_cli.storage.store import AlreadyExists
from tests.test_server import server_env


def _root(tmp: Path, scopes=("read", "publish", "promote", "admin")) -> tuple[Path, dict[str, str]]:
    root = tmp / "registry"
    reg = ModelRegistry(root)
    reg.init()
    book = Tokens(reg.store, reg.states, "setup")
    return root, {s: book.create(f"tok-{s}", [s]).secret for s in scopes}


def _app(root: Path, **kw):
    from registry_cli.httpapp import create_app
    from registry_cli.server.context import ServerContext

    return create_app(ServerContext(root, ModelRegistry(root).config, **kw))


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(fam, name: str) -> list:
    return [s for s in fam.samples if s.name == name]


def _publish(client: TestClient, name: str, data: bytes, token: str):
    return client.post(
        f"/api/v1/models/{name}/-/versions",
        files=[("file", ("weights.bin", data, "application/octet-stream"))],
        headers={"Authorization": f"Bearer {token}"},
    )


def test_metrics_need_a_read_token_and_count_by_route_template(tmp_path):
    root, tokens = _root(tmp_path)
    read = {"Authorization": f"Bearer {tokens['read']}"}
    with TestClient(_app(root)) as client:
        assert client.get("/metrics").status_code == 401
        assert (
            client.get("/metrics", headers={"Authorization": "Bearer rgt_nope"}).status_code == 401
        )
        for i in range(5):  # five models: five raw paths, one route template
            assert _publish(client, f"team/m{i}", b"x" * 1000, tokens["publish"]).status_code == 201
            assert (
                client.get(f"/api/v1/models/team/m{i}/-/versions", headers=read).status_code == 200
            )
        for i in range(5):  # unknown paths: one label however many are asked
            client.get(f"/no/such/page/{i}", headers=read)
        reply = client.get("/metrics", headers=read)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        fams = _families(reply.text)

    requests = _samples(fams["regctl_http_requests"], "regctl_http_requests_total")
    routes = {s.labels["route"] for s in requests}
    assert "/api/v1/models/{name:modelname}/-/versions" in routes
    assert not any("team/m" in r or "/no/such" in r for r in routes), routes  # bounded labels
    listing = [
        s
        for s in requests
        if s.labels
        == {"method": "GET", "route": "/api/v1/models/{name:modelname}/-/versions", "status": "200"}
    ]
    assert listing and listing[0].value == 5
    published = [
        s for s in requests if s.labels["method"] == "POST" and s.labels["status"] == "201"
    ]
    assert sum(s.value for s in published) == 5
    assert {s.labels["status"] for s in requests if s.labels["route"] == "/metrics"} == {"401"}

    buckets = _samples(
        fams["regctl_http_request_duration_seconds"], "regctl_http_request_duration_seconds_bucket"
    )
    assert buckets and all(set(b.labels) == {"method", "route", "le"} for b in buckets)
    assert _samples(fams["regctl_upload_bytes"], "regctl_upload_bytes_total")[0].value > 5000
    commits = _samples(fams["regctl_commits"], "regctl_commits_total")
    assert sum(s.value for s in commits) == 5
    assert "regctl_conflicts_retried" in fams and "regctl_fleet_reports" in fams
    depth = {s.labels["state"]: s.value for s in fams["regctl_outbox_depth"].samples}
    assert depth == {"pending": 0, "dead": 0}


def test_two_apps_in_one_process_keep_their_own_counts(tmp_path):
    root_a, tokens_a = _root(tmp_path / "a")
    root_b, tokens_b = _root(tmp_path / "b")
    with TestClient(_app(root_a)) as a, TestClient(_app(root_b)) as b:
        for _ in range(3):
            a.get("/api/v1/models", headers={"Authorization": f"Bearer {tokens_a['read']}"})
        text = b.get("/metrics", headers={"Authorization": f"Bearer {tokens_b['read']}"}).text
    requests = _samples(_families(text)["regctl_http_requests"], "regctl_http_requests_total")
    assert not [s for s in requests if s.labels["route"] == "/api/v1/models"]


def test_metrics_are_open_with_anonymous_read_and_conflicts_are_counted(tmp_path, model_file):
    root, tokens = _root(tmp_path)
    app = _app(root, anonymous_read=True)
    store = app.state.ctx.base.store
    store.create("probe/once", b"1")
    with pytest.raises(AlreadyExists):
        store.create("probe/once", b"2")  # a second writer of one key loses the race
    with TestClient(app) as client:
        reply = client.get("/metrics")
    assert reply.status_code == 200
    fams = _families(reply.text)
    assert (
        _samples(fams["regctl_conflicts_retried"], "regctl_conflicts_retried_total")[0].value == 1
    )


def test_health_reports_store_outbox_and_version(tmp_path):
    from registry_cli.version import __version__

    root, _tokens = _root(tmp_path)
    with TestClient(_app(root)) as client:
        doc = client.get("/api/v1/health", headers={"Authorization": "Bearer wrong"}).json()
    assert doc["status"] == "ok" and doc["version"] == __version__
    assert doc["store"] == {"kind": "folder", "reachable": True}
    assert doc["outbox"] == {"depth": 0, "dead": 0}


def test_redaction_hides_credentials():
    assert "rgt_abc" not in redact("Authorization: Bearer rgt_abc-DEF")
    assert redact("password=hunter2 and x=1") == "password=[redacted] and x=1"
    assert "s3cr3t" not in safe_query("token=s3cr3t&stage=release")
    assert "stage=release" in safe_query("token=s3cr3t&stage=release")


@pytest.mark.slow
def test_json_logs_one_object_per_line_and_never_a_secret(tmp_path, model_file):
    root, tokens = _root(tmp_path)
    password = "ftp-Pa55-never-logged-7d1e"
    log = tmp_path / "server.log"
    proc = ServeRegistryProcess(root, "--log-format", "json", log=log, env=server_env(tmp_path))
    proc.start()
    try:
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        with httpx.Client(base_url=proc.url, timeout=60) as c:
            up = c.post(
                "/api/v1/models/team/ppe/-/versions",
                files=[("file", ("w.bin", b"w" * 100, "application/octet-stream"))],
                headers={"Authorization": f"Bearer {tokens['publish']}"},
            )
            assert up.status_code == 201, up.text
            c.get(f"/api/v1/models?token={tokens['read']}&password={password}", headers=admin)
            c.get("/api/v1/models", headers={"Authorization": f"Bearer {tokens['read']}x"})
            ftp = c.post(
                "/api/v1/ftp-servers",
                json={"port": 0, "user": "mlops", "password": password},
                headers=admin,
            )
            assert ftp.status_code == 201, ftp.text
            form = c.get("/sign-in")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
            signed = c.post(
                "/sign-in",
                data={"token": tokens["promote"], "csrf": csrf, "next": "/"},
                headers={"Sec-Fetch-Site": "same-origin"},
            )
            assert signed.status_code == 303
            cookie = signed.cookies.get("regctl_session")
            assert cookie and c.get("/", cookies={"regctl_session": cookie}).status_code == 200
    finally:
        assert proc.stop() == 0
    text = log.read_text()
    for secret in (*tokens.values(), password, cookie):
        assert secret not in text
    objects = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [o for o in objects if o["event"] == "request"]
    assert {"serving", "draining", "stopped"} <= {o["event"] for o in objects}
    assert any(
        o["route"] == "/api/v1/models/{name:modelname}/-/versions" and o["status"] == 201
        for o in requests
    )
    assert any(o["status"] == 401 for o in requests)
    assert all(
        set(o) >= {"time", "level", "method", "route", "path", "status", "duration_ms"}
        for o in requests
    )
    stray = [line for line in text.splitlines() if line and not line.startswith("{")]
    assert stray == [f"regctl serve-registry: serving {root} on {proc.url}"]  # the ready line


def test_health_is_503_and_degraded_when_the_store_does_not_answer(tmp_path):
    root, _tokens = _root(tmp_path)
    app = _app(root)

    def unreachable(key):
        raise ConnectionRefusedError("store down")

    app.state.ctx.base.store.kind = unreachable
    with TestClient(app) as client:
        reply = client.get("/api/v1/health")
    assert reply.status_code == 503
    doc = reply.json()
    assert doc["status"] == "degraded"
    assert doc["store"] == {"kind": "folder", "reachable": False, "error": "ConnectionRefusedError"}


def test_the_cli_never_loads_prometheus_client_on_start_up():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from registry_cli.cli.main import main\n"
        "sys.argv = ['regctl', 'serve-registry', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED' if 'prometheus_client' in sys.modules else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().endswith("CLEAN"), out


def test_a_bad_log_format_is_refused_at_the_door(tmp_path, cli):
    _root(tmp_path)
    result = cli("--root", str(tmp_path / "registry"), "serve-registry", "--log-format", "xml")
    assert result.exit_code == 2
    assert "error:" in result.stderr and "--log-format" in result.stderr


def test_text_access_lines_hide_query_secrets_too():
    import logging

    from registry_cli.server.logging_json import RedactAccess

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/v1/models?token=rgt_s3cr3t&stage=release", "1.1", 200),
        None,
    )
    assert RedactAccess().filter(record)
    line = record.getMessage()
    assert "rgt_s3cr3t" not in line and "stage=release" in line and "token=" in line


def test_health_and_metrics_count_what_the_outbox_holds(tmp_path):
    from registry_cli.core import outbox

    root, tokens = _root(tmp_path)
    store = ModelRegistry(root).store
    # a kind no sender in this process handles: it stays queued, as a delivery
    # whose receiver is down does
    outbox.enqueue(store, "probe", {"n": 1})
    outbox.enqueue(store, "probe", {"n": 2})
    with TestClient(_app(root)) as client:
        doc = client.get("/api/v1/health").json()
        text = client.get("/metrics", headers={"Authorization": f"Bearer {tokens['read']}"}).text
    assert doc["outbox"] == {"depth": 2, "dead": 0}
    depth = {s.labels["state"]: s.value for s in _families(text)["regctl_outbox_depth"].samples}
    assert depth == {"pending": 2, "dead": 0}
