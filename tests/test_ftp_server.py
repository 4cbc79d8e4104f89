"""``regctl serve-ftp`` as a real subprocess, probed with stdlib ftplib and curl."""

from __future__ import annotations

import ftplib
import io
import json
import os
import signal
import ssl
import subprocess
import time

import pytest

from registry_cli import ModelRegistry
from tests.cas_helpers import bundle_bytes
from tests.conftest import regctl_cmd
from tests.ftp_helpers import PASSWORD, FtpServer, make_tls_cert

pytestmark = pytest.mark.slow
PW_ENV = {"FTP_PW": PASSWORD}
USER_ARGS = ("--user", "mlops", "--password-env", "FTP_PW", "--login-delay", "0.2")


@pytest.fixture
def served(root, tmp_path):
    """A registry with faq-bot v1 (released) and v2 (dev)."""
    reg = ModelRegistry(root)
    for seed in (1, 2):
        src = tmp_path / "src" / f"s{seed}" / "model.pt"
        src.parent.mkdir(parents=True)
        src.write_bytes(os.urandom(100_000))
        reg.publish("faq-bot", [src])
    reg.promote("faq-bot", version="v1")
    return reg


@pytest.fixture
def server(served, root):
    with FtpServer(root, *USER_ARGS, env=PW_ENV) as srv:
        yield srv


def curl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=timeout
    )


def test_refuses_to_start_without_a_password_source(served, root):
    for args in (
        [],
        ["--user", "mlops"],
        ["--password-env", "FTP_PW"],
        ["--user", "mlops", "--password-env", "NOT_SET_ANYWHERE"],
    ):
        proc = subprocess.run(
            regctl_cmd("--root", str(root), "serve-ftp", "--port", "0", *args),
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, **PW_ENV),
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error: ")


def test_password_on_the_command_line_is_not_an_option(served, root):
    proc = subprocess.run(
        regctl_cmd("--root", str(root), "serve-ftp", "--password", "x"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2


def test_downloads_with_ftplib_and_curl_match_the_registry(server, served, root):
    latest = (root / "dist/release/faq-bot/LATEST").read_bytes()
    with server.ftp() as ftp:
        buf = io.BytesIO()
        ftp.retrbinary("RETR /release/faq-bot/LATEST", buf.write)
        assert buf.getvalue() == latest == b"v1\n"
        assert sorted(ftp.nlst("/release/faq-bot")) == [
            "LATEST",
            "LATEST.json",
            "aliases.json",  # the stage's aliases, which `pull --alias` follows
            "index.json",
            "versions",
        ]
        buf = io.BytesIO()
        ftp.retrbinary("RETR /release/faq-bot/aliases.json", buf.write)
        assert json.loads(buf.getvalue()) == {"champion": "v1"}
    res = curl(
        "--user", f"mlops:{PASSWORD}", f"{server.url}/release/faq-bot/versions/v1/bundle.tar.gz"
    )
    assert res.returncode == 0, res.stderr
    # assembled from the payload as it is sent: the bytes publish hashed
    assert res.stdout == bundle_bytes(root / "models/faq-bot/v1")
    time.sleep(0.2)
    log = server.log
    assert "connect" in log and "logged in" in log
    assert "RETR" in log and "/release/faq-bot/versions/v1/bundle.tar.gz completed=1" in log
    assert PASSWORD not in log


def test_wrong_password_is_refused_after_a_delay(server):
    client = ftplib.FTP(timeout=10)
    client.connect(server.host, server.port)
    t0 = time.monotonic()
    with pytest.raises(ftplib.error_perm, match="530"):
        client.login("mlops", "Bad-Pw-9731")
    assert time.monotonic() - t0 >= 0.2
    client.close()
    with pytest.raises(ftplib.error_perm, match="530"):
        server.ftp("root", PASSWORD)
    res = curl("--user", "mlops:Bad-Pw-9731", f"{server.url}/release/faq-bot/LATEST")
    assert res.returncode == 67  # curl: login denied
    time.sleep(0.3)
    assert "failed login" in server.log and "Bad-Pw-9731" not in server.log


@pytest.mark.parametrize(
    "command",
    [
        "STOR /release/faq-bot/evil",
        "STOR evil",
        "APPE /release/faq-bot/LATEST",
        "DELE /release/faq-bot/LATEST",
        "MKD /release/new",
        "RMD /release/faq-bot/versions",
        "RNFR /release/faq-bot/LATEST",
        "SITE CHMOD 777 /release/faq-bot/LATEST",
        "STOU",
        "MFMT 20200101000000 /release/faq-bot/LATEST",
    ],
)
def test_write_commands_are_refused(server, root, command):
    before = sorted(p.relative_to(root) for p in (root / "dist").rglob("*"))
    with server.ftp() as ftp:
        if command.split()[0] in ("STOR", "APPE", "STOU"):
            with pytest.raises(ftplib.error_perm, match="^5"):
                ftp.storbinary(command, io.BytesIO(b"data"))
        else:
            with pytest.raises(ftplib.error_perm, match="^5"):
                ftp.voidcmd(command)
    assert sorted(p.relative_to(root) for p in (root / "dist").rglob("*")) == before
    assert (root / "dist/release/faq-bot/LATEST").read_text() == "v1\n"


def test_upload_with_curl_is_refused(server, root, tmp_path):
    f = tmp_path / "up.txt"
    f.write_text("x")
    res = curl("--user", f"mlops:{PASSWORD}", "-T", str(f), f"{server.url}/release/up.txt")
    assert res.returncode != 0
    assert not (root / "dist/release/up.txt").exists()


def test_paths_cannot_leave_dist(server, root):
    (root / "secret.txt").write_text("top secret")
    os.symlink(root / "secret.txt", root / "dist/release/faq-bot/link-out")
    os.symlink(root / "models", root / "dist/release/models-out")
    (root / "dist/release/.hidden").write_text("temp")
    with server.ftp() as ftp:
        ftp.cwd("../../../..")
        assert ftp.pwd() == "/"
        ftp.cwd("/release/../../..")
        assert ftp.pwd() == "/"
        for path in (
            "/../secret.txt",
            "../secret.txt",
            "/release/faq-bot/link-out",
            "/release/models-out/faq-bot/model.yaml",
            str(root / "secret.txt"),
            "/release/.hidden",
            "/etc/passwd",
        ):
            with pytest.raises(ftplib.error_perm, match="^55"):
                ftp.retrbinary(f"RETR {path}", lambda b: None)
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd("/release/models-out")
        assert ftp.nlst("/release") == ["faq-bot"]  # no symlink out, no hidden entry
        assert "link-out" not in ftp.nlst("/release/faq-bot")
    res = curl("--user", f"mlops:{PASSWORD}", "--path-as-is", f"{server.url}/../../secret.txt")
    assert b"top secret" not in res.stdout


def test_anonymous_is_read_only(served, root):
    with FtpServer(root, "--anonymous") as srv:
        with srv.ftp("anonymous", "guest@") as ftp:
            buf = io.BytesIO()
            ftp.retrbinary("RETR /release/faq-bot/LATEST", buf.write)
            assert buf.getvalue() == b"v1\n"
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.storbinary("STOR /release/x", io.BytesIO(b"x"))
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.voidcmd("DELE /release/faq-bot/LATEST")
        res = curl(f"{srv.url}/release/faq-bot/LATEST")
        assert res.stdout == b"v1\n"
        with pytest.raises(ftplib.error_perm, match="530"):
            srv.ftp("mlops", PASSWORD)  # no named user configured


def test_passive_port_range_and_connection_cap(served, root):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = max(s.getsockname()[1], 20000)
    lo, hi = base, base + 4
    with FtpServer(
        root, *USER_ARGS, "--passive-ports", f"{lo}-{hi}", "--max-cons-per-ip", "2", env=PW_ENV
    ) as srv:
        a, b = srv.ftp(), srv.ftp()
        try:
            a.voidcmd("TYPE I")
            conn = a.transfercmd("RETR /release/faq-bot/LATEST")
            assert lo <= conn.getpeername()[1] <= hi
            assert conn.recv(100) == b"v1\n"
            conn.close()
            a.voidresp()
            with pytest.raises((ftplib.error_temp, EOFError, ConnectionError)):
                c = ftplib.FTP(timeout=10)
                c.connect(srv.host, srv.port)
                c.login("mlops", PASSWORD)
        finally:
            a.close()
            b.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_sigterm_and_ctrl_c(server, sig):
    with server.ftp() as ftp:
        ftp.voidcmd("NOOP")
    assert server.stop(sig) == 0
    assert "stopped" in server.log
    assert "Traceback" not in server.log


def test_settings_from_registry_yaml(served, root, tmp_path):
    pw_file = tmp_path / "ftp.pass"
    pw_file.write_text(PASSWORD + "\n")
    (root / "registry.yaml").write_text(
        "ftp:\n  user: reader\n  password_file: " + str(pw_file) + "\n  login_delay_s: 0.1\n"
        "  max_cons_per_ip: 4\n"
    )
    with FtpServer(root) as srv:
        with srv.ftp("reader", PASSWORD) as ftp:
            assert ftp.nlst("/release") == ["faq-bot"]
    (root / "registry.yaml").write_text("ftp:\n  user: reader\n  password: plain\n")
    proc = subprocess.run(
        regctl_cmd("--root", str(root), "serve-ftp", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "password_env" in proc.stderr + proc.stdout


def test_ftps_requires_tls_on_both_channels(served, root, tmp_path):
    cert, key = make_tls_cert(tmp_path / "tls")
    with FtpServer(
        root, *USER_ARGS, "--tls-cert", str(cert), "--tls-key", str(key), env=PW_ENV
    ) as srv:
        plain = ftplib.FTP(timeout=10)
        plain.connect(srv.host, srv.port)
        with pytest.raises(ftplib.error_perm, match="^55"):
            plain.login("mlops", PASSWORD)  # TLS required on the control channel
        plain.close()
        ctx = ssl.create_default_context(cafile=str(cert))
        tls = ftplib.FTP_TLS(context=ctx, timeout=10)
        tls.connect(srv.host, srv.port)
        tls.login("mlops", PASSWORD)
        with pytest.raises(ftplib.error_perm, match="TLS required on the data channel"):
            tls.retrbinary("RETR /release/faq-bot/LATEST", lambda b: None)  # data not protected
        tls.prot_p()
        buf = io.BytesIO()
        tls.retrbinary("RETR /release/faq-bot/LATEST", buf.write)
        assert buf.getvalue() == b"v1\n"
        tls.quit()
        res = curl(
            "--ssl-reqd",
            "--cacert",
            str(cert),
            "--user",
            f"mlops:{PASSWORD}",
            f"{srv.url}/release/faq-bot/LATEST",
        )
        assert res.returncode == 0, res.stderr
        assert res.stdout == b"v1\n"
        res = curl("--ssl-reqd", "--user", f"mlops:{PASSWORD}", f"{srv.url}/release/faq-bot/LATEST")
        assert res.returncode != 0  # an untrusted certificate is rejected by the client


def test_refuses_a_missing_tls_key(served, root, tmp_path):
    cert, _key = make_tls_cert(tmp_path / "tls")
    proc = subprocess.run(
        regctl_cmd(
            "--root", str(root), "serve-ftp", "--port", "0", "--anonymous", "--tls-cert", str(cert)
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--tls-key" in proc.stderr


def test_curl_lists_the_tree(server):
    res = curl("--user", f"mlops:{PASSWORD}", "-l", f"{server.url}/release/faq-bot/versions/")
    assert res.returncode == 0 and res.stdout.split() == [b"v1"]
