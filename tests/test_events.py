"""Webhooks (see docs/events.md): a real HTTP receiver on a loopback port checks body, signature
and event order for changes made by the CLI and the library; a receiver that is down,
slow, refusing or flaky never fails the change; secrets never show."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from tests.http_receiver import PostReceiver, free_port

SECRET = "hook-secret-7f3a9c"  # never to be seen in output or audit


class Receiver(PostReceiver):
    """Records every POST as (path, headers, body). Paths: /ok answers 200, /flaky 500
    then 200, /refuse 400, /moved 302 to /ok, /slow sleeps 2 s before answering."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.flaky_failures = 1
        super().__init__(tls)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        self.calls.append((path, headers, body))
        if path == "/flaky" and self.flaky_failures > 0:
            self.flaky_failures -= 1
            return 500, {}
        if path == "/refuse":
            return 400, {}
        if path == "/moved":
            return 302, {"Location": "/ok"}
        if path == "/slow":
            time.sleep(2)
        return 200, {}

    def bodies(self, path: str = "/ok") -> list[dict]:
        return [json.loads(body) for p, _h, body in self.calls if p == path]


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch):
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


def write_config(root: Path, hooks: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "registry.yaml").write_text("format_version: 1\nwebhooks:\n" + hooks)


def hook(url: str, events: str = "[publish, promote, rollback, archive, alias, tag]", **kw) -> str:
    extra = "".join(f"    {k}: {v}\n" for k, v in kw.items())
    return f"  - url: {url}\n    events: {events}\n    secret_env: HOOK_SECRET\n{extra}"


def verify(body: bytes, header: str, secret: str) -> bool:
    """The three lines a receiver uses (README, registry.yaml.example)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


class CliDriver:
    def __init__(self, cli, model_file: Path) -> None:
        self.cli, self.file = cli, model_file
        self.stderr = ""
        self.stdout = ""

    def __call__(self, *args: str) -> None:
        res = self.cli(*args)
        assert res.exit_code == 0, res.stderr
        self.stdout += res.stdout
        self.stderr += res.stderr

    def lifecycle(self, name: str) -> None:
        self("publish", name, str(self.file))
        self("promote", name)
        self("publish", name, str(self.file))
        self("promote", name)
        self("promote", name, "--version", "v2")  # a no-op: not an event
        self("rollback", name)
        self("archive", name, "v2", "--reason", "bad")
        self("alias", "set", name, "canary", "v1")
        self("alias", "rm", name, "canary")
        self("tag", name, "v1", "dataset=d1")
        self("gc")  # not an event


def library_lifecycle(reg: ModelRegistry, name: str, model_file: Path) -> None:
    reg.publish(name, [model_file])
    reg.promote(name)
    reg.publish(name, [model_file])
    reg.promote(name)
    reg.promote(name, version="v2")
    reg.rollback(name)
    reg.archive(name, "v2", reason="bad")
    reg.set_alias(name, "canary", "v1")
    reg.remove_alias(name, "canary")
    reg.tag(name, "v1", {"dataset": "d1"})
    reg.gc()


EXPECTED = [
    ("publish", "publish", "v1"),
    ("promote", "promote", "v1"),
    ("publish", "publish", "v2"),
    ("promote", "promote", "v2"),
    ("rollback", "rollback", "v1"),  # the new champion
    ("archive", "archive", "v2"),
    ("alias", "alias-set", "v1"),
    ("alias", "alias-rm", "v1"),
    ("tag", "tag", "v1"),
]


@pytest.mark.parametrize("via", ["cli", "library"])
def test_every_change_is_posted_signed_and_in_order(
    via, cli, root, receiver, model_file, monkeypatch
):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    write_config(
        root,
        hook(f"{receiver.url}/ok")
        + hook(f"{receiver.url}/deploy?token=abc", events="[promote, rollback]"),
    )
    driver = CliDriver(cli, model_file)
    if via == "cli":
        driver.lifecycle("team/ppe")
    else:
        library_lifecycle(ModelRegistry(root), "team/ppe", model_file)

    bodies = receiver.bodies("/ok")
    assert [(b["event"], b["action"], b["version"]) for b in bodies] == EXPECTED
    audit = [
        e for e in ModelRegistry(root).audit("team/ppe").entries if not e["details"].get("noop")
    ]
    assert len(audit) == len(bodies)
    for body, entry in zip(bodies, audit, strict=True):
        assert set(body) == {"event", "action", "model", "version", "actor", "time", "changed"}
        assert body["model"] == "team/ppe" and body["actor"] == "tester"
        assert (body["time"], body["changed"]) == (entry["time"], entry["details"])
    assert bodies[4]["changed"]["aliases"]["champion"] == ["v2", "v1"]
    assert bodies[8]["changed"] == {"tags": {"set": {"dataset": "d1"}, "removed": []}}

    ok_calls = [c for c in receiver.calls if c[0] == "/ok"]
    for _path, headers, raw in ok_calls:
        assert headers["Content-Type"] == "application/json"
        assert verify(raw, headers["X-Regctl-Signature"], SECRET)
        assert not verify(raw, headers["X-Regctl-Signature"], "another-secret")
        assert headers["X-Regctl-Event"] == json.loads(raw)["event"]
    deploy = [json.loads(b) for p, _h, b in receiver.calls if p.startswith("/deploy")]
    assert [(b["event"], b["version"]) for b in deploy] == [
        ("promote", "v1"),
        ("promote", "v2"),
        ("rollback", "v1"),
    ]
    # the secret is nowhere: output, audit, served tree, model state
    assert SECRET not in driver.stdout + driver.stderr
    assert "warning" not in driver.stderr
    for path in root.rglob("*"):
        if path.is_file() and path.name != "registry.yaml":
            assert SECRET.encode() not in path.read_bytes(), path


def test_failing_receivers_warn_once_each_and_never_fail_the_change(
    regctl_proc, root, receiver, model_file
):
    dead = f"http://127.0.0.1:{free_port()}/gone"
    write_config(
        root,
        hook(dead, timeout_s=1, tries=3)
        + hook(f"{receiver.url}/slow", timeout_s=0.3, tries=2)
        + hook(f"{receiver.url}/refuse")
        + hook(f"{receiver.url}/moved")
        + hook(f"{receiver.url}/flaky")
        + hook(f"{receiver.url}/ok"),
    )
    env = {"HOOK_SECRET": SECRET}
    started = time.monotonic()
    proc = regctl_proc("publish", "m", str(model_file), env=env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "published m:v1" in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert sorted(lines) == sorted(
        [
            f"warning: webhook {dead} (publish) failed after 3 tries: [Errno 111] "
            "Connection refused",
            f"warning: webhook {receiver.url}/slow (publish) failed after 2 tries: timed out",
            f"warning: webhook {receiver.url}/refuse (publish) failed after 1 try: HTTP 400",
            f"warning: webhook {receiver.url}/moved (publish) failed after 1 try: HTTP 302",
        ]
    ), proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    # the dead one backs off 0.5 + 1 s; the slow one costs 2 x 0.3 s + 0.5 s; in parallel
    assert elapsed < 15
    calls = [p for p, _h, _b in receiver.calls]
    assert calls.count("/slow") == 2 and calls.count("/refuse") == calls.count("/moved") == 1
    assert calls.count("/flaky") == 2 and calls.count("/ok") == 1  # retry after the 500 worked
    flaky = [(h["X-Regctl-Delivery"], b) for p, h, b in receiver.calls if p == "/flaky"]
    assert flaky[0] == flaky[1]  # the same delivery, retried
    assert ModelRegistry(root).model_state("m").aliases == {"candidate": 1}
    entries = ModelRegistry(root).audit().entries
    assert [e["action"] for e in entries] == ["publish"]
    assert SECRET not in (root / "audit.jsonl").read_text()


def test_without_the_secret_nothing_is_sent_unsigned(cli, root, receiver, model_file):
    write_config(root, hook(f"{receiver.url}/ok"))
    res = cli("publish", "m", str(model_file))
    assert res.exit_code == 0
    assert res.stderr.strip() == (
        f"warning: webhook {receiver.url}/ok (publish) not sent: $HOOK_SECRET is not set "
        "(regctl does not send unsigned deliveries)"
    )
    assert receiver.calls == []
    assert ModelRegistry(root).list_versions("m")[0].vname == "v1"


def test_with_a_proxy_variable_the_delivery_goes_through_the_proxy(
    cli, root, receiver, model_file, monkeypatch
):
    """urllib sends it then: the receiver here plays the proxy and sees the absolute URL."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("http_proxy", receiver.url)
    write_config(root, hook("http://deploy.invalid/hook?token=t1"))
    res = cli("publish", "m", str(model_file))
    assert res.exit_code == 0 and res.stderr == "", res.stderr
    [(path, headers, body)] = receiver.calls
    assert path == "http://deploy.invalid/hook?token=t1"
    assert json.loads(body)["event"] == "publish"
    assert verify(body, headers["X-Regctl-Signature"], SECRET)


def test_https_receivers_are_verified_against_the_trust_store(
    cli, root, model_file, tmp_path, monkeypatch
):
    from tests.ftp_helpers import make_tls_cert

    cert, key = make_tls_cert(tmp_path / "tls")
    receiver = Receiver(tls=(cert, key))
    try:
        monkeypatch.setenv("HOOK_SECRET", SECRET)
        write_config(root, hook(f"{receiver.url}/ok", tries=1))
        res = cli("publish", "m", str(model_file))  # a self-signed certificate: refused
        assert res.exit_code == 0
        assert res.stderr.startswith(f"warning: webhook {receiver.url}/ok (publish) failed after")
        assert "CERTIFICATE_VERIFY_FAILED" in res.stderr and len(res.stderr.splitlines()) == 1
        assert receiver.calls == []
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted
        res = cli("tag", "m", "v1", "a=b")
        assert res.exit_code == 0 and res.stderr == "", res.stderr
        [(path, headers, body)] = receiver.calls
        assert path == "/ok" and json.loads(body)["event"] == "tag"
        assert verify(body, headers["X-Regctl-Signature"], SECRET)
    finally:
        receiver.close()


def test_a_hook_without_matching_events_sees_nothing(cli, root, receiver, model_file, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    write_config(root, hook(f"{receiver.url}/ok", events="[archive]"))
    assert cli("publish", "m", str(model_file)).exit_code == 0
    assert cli("tag", "m", "v1", "a=b").exit_code == 0
    assert receiver.calls == []


@pytest.mark.parametrize(
    "hooks, where, needle",
    [
        ("  url: http://x\n", 3, "webhooks must be a list"),
        ("  - url: ftp://h/x\n    events: [publish]\n    secret_env: S\n", 3, "http(s) URL"),
        ("  - url: http://h/x\n    events: [deploy]\n    secret_env: S\n", 4, "events must be"),
        ("  - url: http://h/x\n    events: [publish]\n", 3, "entry 1 has no secret_env"),
        (
            "  - url: http://h/x\n    events: [tag]\n    secret_env: S\n    secret: abc\n",
            6,
            "unknown key 'secret' (put the secret in an environment variable",
        ),
        (
            "  - url: http://h/x\n    events: [tag]\n    secret_env: S\n"
            "  - url: http://h/y\n    events: [tag]\n    secret_env: S\n    tries: 0\n",
            9,
            "tries must be a whole number 1-10",
        ),
        ("  - url: http://u:pw@h/x\n    events: [tag]\n    secret_env: S\n", 3, "no password"),
        ("  - url: http://h/x\n    events: [tag]\n    secret_env: $S\n", 5, "secret_env must"),
        (
            "  - url: http://h/x\n    events: [tag]\n    secret_env: S\n    timeout_s: -1\n",
            6,
            "timeout_s must be a positive number",
        ),
    ],
)
def test_bad_webhooks_config_names_file_and_line(cli, root, hooks, where, needle):
    write_config(root, hooks)
    res = cli("list")
    assert res.exit_code == 2
    assert f"registry.yaml:{where}: " in res.stderr, res.stderr
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_no_http_code_is_imported_without_a_matching_hook(tmp_path, root, model_file):
    """Start-up cost is unchanged: the network code loads only when a hook matches."""
    import subprocess
    import sys

    write_config(root, hook("http://127.0.0.1:9/x", events="[archive]"))
    code = (
        "import sys\n"
        "from registry_cli import ModelRegistry\n"
        f"r = ModelRegistry({str(root)!r})\n"
        f"r.publish('m', [{str(model_file)!r}])\n"
        "print(any(m in sys.modules for m in ('socket', 'ssl', 'urllib.request')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.slow
def test_changes_made_through_the_registry_server_are_posted_by_the_server(
    tmp_path, receiver, model_file
):
    """The process that made the change delivers it (docs/events.md), here `serve-registry`."""
    from registry_cli import RemoteRegistry
    from registry_cli.core.tokens import Tokens
    from registry_cli.server.launch import ServeRegistryProcess

    root = tmp_path / "registry"
    local = ModelRegistry(root)
    local.init()
    token = Tokens(local.store, local.states, "setup").create("ci", ["admin"]).secret
    write_config(root, hook(f"{receiver.url}/ok", events="[publish, promote, tag]"))
    home = tmp_path / "server-home"
    home.mkdir()
    proc = ServeRegistryProcess(
        root,
        log=tmp_path / "server.log",
        env={"HOME": str(home), "NO_COLOR": "1", "HOOK_SECRET": SECRET},
    ).start()
    try:
        remote = RemoteRegistry(proc.url, token=token)
        remote.publish("srv/m", [model_file])
        remote.promote("srv/m")
        remote.set_alias("srv/m", "canary", "v1")  # not subscribed
        remote.tag("srv/m", "v1", {"k": "v"})
    finally:
        assert proc.stop() == 0, proc.log
    bodies = receiver.bodies("/ok")
    assert [(b["event"], b["model"], b["version"]) for b in bodies] == [
        ("publish", "srv/m", "v1"),
        ("promote", "srv/m", "v1"),
        ("tag", "srv/m", "v1"),
    ]
    audit = {e["time"]: e for e in ModelRegistry(root).audit("srv/m").entries}
    for (_path, headers, raw), body in zip(receiver.calls, bodies, strict=True):
        assert verify(raw, headers["X-Regctl-Signature"], SECRET)
        assert body["actor"] == audit[body["time"]]["actor"]
    assert SECRET not in proc.log and "warning" not in proc.log
