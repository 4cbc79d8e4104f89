"""`regctl serve`: the real server in a subprocess on a free loopback port, a real
callback receiver, reloads under a concurrent client loop, 400/413/503, load retry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests import _predict_models as pm
from tests.conftest import regctl_cmd
from tests.http_receiver import PostReceiver, free_port

SIG = {"inputs": [{"shape": [None, pm.T, pm.F], "dtype": "float32"}], "batch_dim": 0}


class Server:
    """``regctl serve`` in a subprocess; stopped by its own handle."""

    def __init__(
        self,
        root: Path,
        log: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = dict(os.environ, **(env or {}))
        cmd = regctl_cmd("--root", str(root), "serve", *args)
        if env is None or "REGCTL_SERVE_PORT" not in env:
            cmd += ["--port", str(self.port)]
        self._logfh = open(log, "wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self._logfh, stderr=subprocess.STDOUT, env=full_env
        )
        self.client = httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_health(self, *, loaded: bool | None = None, deadline_s: float = 60) -> dict:
        """Poll /health until it answers (and model_loaded == loaded, if given)."""
        end = time.monotonic() + deadline_s
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                last = self.client.get("/health").json()
                if loaded is None or last["model_loaded"] is loaded:
                    return last
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"/health never reached loaded={loaded}: {last}\n{self.output()}")

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._logfh.close()


@pytest.fixture
def serve(root, tmp_path):
    started: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None, port: int | None = None) -> Server:
        srv = Server(root, tmp_path / f"serve-{len(started)}.log", *args, env=env, port=port)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


class Receiver(PostReceiver):
    """A real HTTP callback receiver on 127.0.0.1: /ok records, /fail answers 500,
    /slow answers after 3 s (past the server's callback timeout)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        super().__init__()

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        if path == "/slow":
            time.sleep(3)
        if path == "/ok":
            self.received.append(json.loads(body))
        return (500 if path == "/fail" else 200), {}


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def pt2(tmp_path_factory) -> Path:
    return pm.save_exported(tmp_path_factory.mktemp("pt2") / "model.pt2")


def champion(reg, name: str, path: Path, **kw) -> str:
    info = reg.publish(name, [path], **kw)
    reg.promote(name)
    return info.vname


@pytest.mark.slow
def test_torch_model_health_predict_callback_and_errors(reg, serve, receiver, pt2):
    champion(reg, "tiny", pt2, signature=SIG)
    srv = serve("tiny", "--max-body-bytes", "20000", "--callback-timeout", "1")
    health = srv.wait_health(loaded=True)
    assert health == {
        "status": "ok",
        "model": "tiny",
        "model_loaded": True,
        "model_alias": "champion",
        "model_version": "v1",
        "loading": False,
        "last_error": None,
    }
    c = srv.client
    assert c.get("/docs").status_code == 200
    assert "/predict" in c.get("/openapi.json").json()["paths"]

    x = pm.example(1)
    r = c.post(
        "/predict",
        json={
            "X": x.tolist(),
            "callback_url": f"{receiver.url}/ok",
            "metadata": {"request_id": "abc-123"},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_allclose(body["prediction"], pm.expected_torch(x[None])[0], rtol=1e-5)
    assert body["posted_to_callback"] is True
    assert (body["model_alias"], body["model_version"]) == ("champion", "v1")
    assert len(receiver.received) == 1
    posted = receiver.received[0]
    assert posted["metadata"] == {"request_id": "abc-123"}
    assert posted["prediction"] == body["prediction"] and posted["model_version"] == "v1"

    xb = pm.example(2, batch=3)
    r = c.post("/predict", json={"X": xb.tolist()})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["prediction"], pm.expected_torch(xb), rtol=1e-5)
    assert r.json()["posted_to_callback"] is False

    # A failing, a hanging and an unreachable callback never fail the prediction.
    for url in (
        f"{receiver.url}/fail",
        f"{receiver.url}/slow",
        f"http://127.0.0.1:{free_port()}/gone",
    ):
        r = c.post("/predict", json={"X": x.tolist(), "callback_url": url})
        assert r.status_code == 200, (url, r.text)
        assert r.json()["posted_to_callback"] is False
    assert len(receiver.received) == 1

    r = c.post("/predict", json={"X": x[:, :17].tolist()})
    assert r.status_code == 400
    assert "X has shape [12, 17], expected [*, 12, 18]" in r.json()["detail"]
    r = c.post("/predict", json={"metadata": {}})
    assert r.status_code == 400 and "X" in r.json()["detail"]
    r = c.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = c.post("/predict", json={"X": x.tolist(), "callback_url": "file:///etc/passwd"})
    assert r.status_code == 400 and "http(s)" in r.json()["detail"]

    big = {"X": [[0.123456789] * pm.F] * 200}
    r = c.post("/predict", json=big)
    assert r.status_code == 413
    # the same, streamed without a Content-Length (chunked)
    data = json.dumps(big).encode()
    r = c.post(
        "/predict",
        content=iter([data[:10000], data[10000:]]),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert c.get("/health").json()["model_loaded"] is True  # still healthy


@pytest.mark.slow
def test_reload_swaps_without_failing_requests_in_flight(reg, serve, pt2):
    champion(reg, "tiny", pt2, signature=SIG)
    srv = serve("tiny")
    srv.wait_health(loaded=True)
    champion(reg, "tiny", pt2, signature=SIG)  # v2 is champion now; the server still has v1
    payload = {"X": pm.example(3).tolist()}
    stop = threading.Event()
    results: list[tuple[int, str | None]] = []
    errors: list[str] = []

    def client_loop() -> None:
        with httpx.Client(base_url=srv.url, timeout=30, trust_env=False) as c:
            while not stop.is_set():
                try:
                    r = c.post("/predict", json=payload)
                    results.append((r.status_code, r.json().get("model_version")))
                except Exception as exc:  # any transport failure counts
                    errors.append(repr(exc))

    threads = [threading.Thread(target=client_loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        while len(results) < 20:
            time.sleep(0.05)
        reloads = []
        for alias in ("champion", "rollback", "champion", None, "rollback", "champion"):
            body = {"alias": alias} if alias else None
            r = srv.client.post("/reload", json=body)
            assert r.status_code == 200, r.text
            reloads.append(r.json()["model_version"])
            seen = len(results)
            while len(results) < seen + 10:
                time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert reloads == ["v2", "v1", "v2", "v2", "v1", "v2"]
    assert errors == []
    assert all(code == 200 for code, _ in results), {c for c, _ in results}
    assert {v for _, v in results} == {"v1", "v2"}
    health = srv.client.get("/health").json()
    assert (health["model_alias"], health["model_version"]) == ("champion", "v2")
    r = srv.client.post("/reload", json={"alias": "nope"})
    assert r.status_code == 404 and "no alias 'nope'" in r.json()["detail"]
    assert srv.client.get("/health").json()["model_version"] == "v2"  # old model kept


@pytest.mark.slow
def test_retries_load_until_the_alias_exists(reg, serve, pt2):
    reg.init()
    srv = serve("tiny", "--load-interval", "0.2", "--load-timeout", "120")
    health = srv.wait_health()
    assert health["model_loaded"] is False and health["loading"] is True
    assert health["model_version"] is None
    r = srv.client.post("/predict", json={"X": pm.example(0).tolist()})
    assert r.status_code == 503
    champion(reg, "tiny", pt2, signature=SIG)
    health = srv.wait_health(loaded=True)
    assert health["model_version"] == "v1" and health["loading"] is False
    assert srv.client.post("/predict", json={"X": pm.example(0).tolist()}).status_code == 200


@pytest.mark.slow
def test_after_the_load_timeout_reload_still_loads(reg, serve, pt2):
    reg.init()
    srv = serve("tiny", "--load-interval", "0.1", "--load-timeout", "0.3")
    end = time.monotonic() + 30
    while srv.wait_health()["loading"] and time.monotonic() < end:
        time.sleep(0.1)
    health = srv.wait_health()
    assert health["loading"] is False and health["model_loaded"] is False
    assert "tiny" in health["last_error"]
    r = srv.client.post("/reload")
    assert r.status_code == 404
    champion(reg, "tiny", pt2, signature=SIG)
    r = srv.client.post("/reload")
    assert r.status_code == 200 and r.json()["model_version"] == "v1"
    assert srv.client.get("/health").json()["model_loaded"] is True


@pytest.mark.slow
def test_mlflow_pyfunc_served_by_env_settings(reg, serve, tmp_path):
    folder = pm.save_mlflow_seq(tmp_path / "src" / "seq_model")
    reg.publish("btc/lstm", [folder])
    reg.publish("btc/lstm", [folder])
    reg.set_alias("btc/lstm", "staging", "v1")
    port = free_port()
    srv = serve(
        "btc/lstm", env={"MODEL_ALIAS": "staging", "REGCTL_SERVE_PORT": str(port)}, port=port
    )
    health = srv.wait_health(loaded=True)
    assert (health["model_alias"], health["model_version"]) == ("staging", "v1")
    x = pm.example(4)
    r = srv.client.post("/predict", json={"X": x.tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["prediction"] == pytest.approx(float(x.sum()), rel=1e-5)
    r = srv.client.post("/predict", json={"X": x[:11].tolist()})
    assert r.status_code == 400 and "expected [*, 12, 18]" in r.json()["detail"]


def test_settings_precedence_flag_env_config():
    from registry_cli.predict.settings import resolve_settings

    cfg = {"port": 9000, "alias": "staging", "load_timeout_s": 300, "load_interval_s": 5}
    env = {"REGCTL_SERVE_PORT": "9100", "MODEL_ALIAS": "canary"}
    s = resolve_settings({"model": "m", "port": None, "alias": None}, cfg, env)
    assert (s.port, s.alias, s.load_timeout_s, s.host) == (9100, "canary", 300.0, "127.0.0.1")
    s = resolve_settings({"model": "m", "port": 9200, "alias": "beta"}, cfg, env)
    assert (s.port, s.alias) == (9200, "beta")
    s = resolve_settings({"model": None}, {}, {"REGCTL_SERVE_MODEL": "a/b"})
    assert (s.model, s.alias, s.port) == ("a/b", "champion", 8000)


@pytest.mark.parametrize(
    "args, env, config, needle",
    [
        (["m"], {"REGCTL_SERVE_PORT": "eighty"}, None, "invalid $REGCTL_SERVE_PORT: 'eighty'"),
        (["m", "--load-interval", "0"], {}, None, "invalid --load-interval"),
        (["m"], {}, "serve:\n  workers: 4\n", "serve: unknown key 'workers'"),
        ([], {}, None, "which model to serve?"),
        (["bad name!"], {}, None, "invalid model name"),
        (["m", "--alias", "v3"], {}, None, "invalid alias"),
    ],
)
def test_bad_settings_refuse_to_start(cli, root, monkeypatch, args, env, config, needle):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if config:
        root.mkdir(parents=True, exist_ok=True)
        (root / "registry.yaml").write_text(config)
    res = cli("serve", *args)
    assert res.exit_code == 2, res.stderr
    assert needle in res.stderr


def test_busy_port_is_a_clean_error(cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        res = cli("serve", "m", "--port", str(busy.getsockname()[1]))
    assert res.exit_code == 2
    assert "cannot listen on 127.0.0.1" in res.stderr and "Traceback" not in res.stderr


SEQ_NETS = """
import torch


class TinySeq(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(18, 2)

    def forward(self, x):
        return self.lin(torch.tanh(x).mean(dim=1))
"""


@pytest.mark.slow
def test_checkpoint_converted_with_arch_is_served(cli, reg, serve, receiver, monkeypatch):
    """publish --convert torch-standard --arch writes a program; serve runs it without the
    user's module."""
    import sys

    import torch

    Path("seqnets.py").write_text(SEQ_NETS)  # the cwd is the test's own work folder
    monkeypatch.delitem(sys.modules, "seqnets", raising=False)
    ns: dict = {}
    exec(SEQ_NETS, ns)
    torch.manual_seed(1)
    net = ns["TinySeq"]().eval()
    torch.save({"epoch": 3, "model_state_dict": net.state_dict()}, "best_checkpoint.pth")
    res = cli(
        "publish",
        "btc/seq",
        "best_checkpoint.pth",
        "--convert",
        "torch-standard",
        "--arch",
        "seqnets:TinySeq",
        "--example-shape",
        "1,12,18",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    runnable = set(info["standard_artifacts"]) & {"exported_program", "torchscript"}
    assert runnable, info["standard_artifacts"]
    os.remove("seqnets.py")
    sys.modules.pop("seqnets", None)
    reg.promote("btc/seq")

    srv = serve("btc/seq")
    assert srv.wait_health(loaded=True)["model_version"] == "v1"
    xb = pm.example(11, batch=2)
    with torch.no_grad():
        want = net(torch.from_numpy(xb)).numpy()
    r = srv.client.post(
        "/predict",
        json={
            "X": xb[0].tolist(),
            "callback_url": f"{receiver.url}/ok",
            "metadata": {"window": "2026-11-23T02:00Z"},
        },
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["prediction"], want[0], rtol=1e-5, atol=1e-6)
    assert r.json()["posted_to_callback"] is True
    assert receiver.received == [
        {
            "prediction": r.json()["prediction"],
            "metadata": {"window": "2026-11-23T02:00Z"},
            "model": "btc/seq",
            "model_alias": "champion",
            "model_version": "v1",
        }
    ]
    r = srv.client.post("/predict", json={"X": xb.tolist()})
    np.testing.assert_allclose(r.json()["prediction"], want, rtol=1e-5, atol=1e-6)
    r = srv.client.post("/predict", json={"X": xb[:, :, :3].tolist()})
    assert r.status_code == 400 and "expected [*, 12, 18]" in r.json()["detail"]


@pytest.mark.slow
def test_pyfunc_logged_to_mlflow_imported_and_served(
    cli, reg, serve, tmp_path, monkeypatch, mlflow_server
):
    """The replaced server's flow: a 12 x 18 pyfunc model logged to a real MLflow server,
    imported with --from-mlflow, served by alias, queried."""
    import uuid

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    code = tmp_path / "seq_model_code.py"
    code.write_text(pm.MLFLOW_CODE)
    name = f"btc-lstm-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run():
        mlflow.log_metric("mae", 0.8)
        logged = mlflow.pyfunc.log_model(
            name="seq_model",
            python_model=str(code),
            signature=pm.mlflow_signature(),
            registered_model_name=name,
        )
    mlflow.MlflowClient(mlflow_server).set_registered_model_alias(
        name, "champion", logged.registered_model_version
    )
    res = cli("publish", "btc/lstm", "--from-mlflow", f"models:/{name}@champion", "--json")
    assert res.exit_code == 0, res.stderr
    assert any(f["path"].endswith("/MLmodel") for f in json.loads(res.stdout)["files"])
    reg.promote("btc/lstm")

    x = pm.example(12)
    res = cli("predict", "btc/lstm@champion", "--input", "-", input=json.dumps({"X": x.tolist()}))
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["prediction"] == pytest.approx(float(x.sum()), rel=1e-5)

    srv = serve("btc/lstm", "--alias", "champion")
    assert srv.wait_health(loaded=True)["model_version"] == "v1"
    r = srv.client.post("/predict", json={"X": x.tolist(), "metadata": {"id": 1}})
    assert r.status_code == 200, r.text
    assert r.json()["prediction"] == pytest.approx(float(x.sum()), rel=1e-5)
    r = srv.client.post("/predict", json={"X": x.T.tolist()})
    assert r.status_code == 400
    assert "X has shape [18, 12], expected [*, 12, 18]" in r.json()["detail"]


def test_a_machine_fault_while_reloading_is_507_and_the_old_model_keeps_serving():
    """A server logs a fault of the machine, answers 507/503, keeps running (docs/operations.md)."""
    import errno

    from fastapi.testclient import TestClient

    from registry_cli.predict.server import create_app
    from registry_cli.predict.settings import ServeSettings

    class Model:
        name, version, alias = "m", "v1", "champion"
        signature = None

        def predict(self, x):
            return [[0.5] for _ in x]

        def describe(self):
            return {}

    calls = []

    def load(alias):
        calls.append(alias)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return Model()

    app = create_app(ServeSettings(model="m"), load, retry_at_start=False)
    with TestClient(app) as client:
        assert client.post("/reload", json={}).status_code == 200
        reply = client.post("/reload", json={})
        assert reply.status_code == 507, reply.text
        assert reply.json()["detail"].startswith("not enough space to reload @champion")
        assert client.get("/health").json()["model_version"] == "v1"
