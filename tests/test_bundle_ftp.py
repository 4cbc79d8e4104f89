"""``serve-ftp`` offers a virtual ``versions/vN/bundle.tar.gz`` for a version whose
bundle is not stored: listed with its size (LIST, MLSD, SIZE), downloaded by
ftplib and curl byte for byte as recorded, resumed with REST; old versions with
a real file are served from it; a damaged payload file fails the transfer."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import shutil
import ssl
import subprocess

import pytest

from tests.bundle_virtual import make_bundle_virtual, publish_with_bundle_file
from tests.ftp_helpers import PASSWORD, FtpServer, make_tls_cert
from tests.test_bundle_stream import artifact, published

BUNDLE = "dev/team/demo/versions/v1/bundle.tar.gz"


@pytest.fixture
def served(tmp_path):
    root, reg = published(tmp_path)
    entry = make_bundle_virtual(root, "team/demo", 1)
    publish_with_bundle_file(
        root, "team/demo", [artifact(tmp_path / "two", sizes=(5000, 20, 30, 40))]
    )
    with FtpServer(
        root, "--user", "mlops", "--password-env", "FTP_PW", env={"FTP_PW": PASSWORD}
    ) as srv:
        yield root, entry, srv


def retr(ftp: ftplib.FTP, path: str, rest: int | None = None) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", out.write, rest=rest)
    return out.getvalue()


def test_listed_downloaded_and_resumed_with_ftplib(served):
    root, entry, srv = served
    ftp = srv.ftp()
    try:
        assert "bundle.tar.gz" in ftp.nlst("dev/team/demo/versions/v1")
        lines: list[str] = []
        ftp.retrlines("LIST dev/team/demo/versions/v1", lines.append)
        row = next(line for line in lines if line.endswith(" bundle.tar.gz"))
        assert f" {entry['size']} " in row and row.startswith("-r--r--r--")
        facts = dict(ftp.mlsd("dev/team/demo/versions/v1"))
        assert facts["bundle.tar.gz"]["type"] == "file"
        assert int(facts["bundle.tar.gz"]["size"]) == entry["size"]
        ftp.voidcmd("TYPE I")
        assert ftp.size(BUNDLE) == entry["size"]
        whole = retr(ftp, BUNDLE)
        assert hashlib.sha256(whole).hexdigest() == entry["sha256"]
        assert retr(ftp, BUNDLE) == whole  # byte-identical on every read
        for cut in (1, 10, 65_550, 1_999_999, entry["size"] - 8, entry["size"]):
            assert whole[:cut] + retr(ftp, BUNDLE, rest=cut) == whole
        with pytest.raises(ftplib.error_perm, match="554"):
            retr(ftp, BUNDLE, rest=entry["size"] + 1)
        with pytest.raises(ftplib.error_perm, match="550"):
            ftp.storbinary(f"STOR {BUNDLE}", io.BytesIO(b"x"))
        # the older layout: a real bundle file, served from the file unchanged
        real = root / "dist/dev/team/demo/versions/v2/bundle.tar.gz"
        assert retr(ftp, "dev/team/demo/versions/v2/bundle.tar.gz") == real.read_bytes()
    finally:
        ftp.quit()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_downloads_and_resumes(served, tmp_path):
    _root, entry, srv = served
    url = f"ftp://mlops:{PASSWORD}@127.0.0.1:{srv.port}/{BUNDLE}"
    out = tmp_path / "b.tar.gz"
    subprocess.run(["curl", "-sS", "-o", str(out), url], check=True, timeout=60)
    whole = out.read_bytes()
    assert hashlib.sha256(whole).hexdigest() == entry["sha256"]
    part = tmp_path / "part.tar.gz"
    part.write_bytes(whole[:1_234_567])
    subprocess.run(["curl", "-sS", "-C", "-", "-o", str(part), url], check=True, timeout=60)
    assert part.read_bytes() == whole
    listing = subprocess.run(
        ["curl", "-sS", url.rsplit("/", 1)[0] + "/"], check=True, timeout=60, capture_output=True
    )
    assert b"bundle.tar.gz" in listing.stdout


def test_a_damaged_payload_file_fails_the_transfer(served):
    root, entry, srv = served
    target = root / "dist/dev/team/demo/versions/v1/payload/art/w.bin"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF
    os.chmod(target, 0o644)
    with open(target, "r+b") as fh:
        fh.write(data)
    ftp = srv.ftp()
    try:
        got = io.BytesIO()
        with pytest.raises(ftplib.error_temp, match="426 The file is damaged"):
            ftp.retrbinary(f"RETR {BUNDLE}", got.write)
        assert len(got.getvalue()) < entry["size"]
    finally:
        ftp.close()
    assert "transfer aborted: " in srv.log and "payload/art/w.bin is damaged" in srv.log
    assert "Traceback" not in srv.log


def test_ftps_sends_the_assembled_bundle(tmp_path):
    root, _reg = published(tmp_path)
    entry = make_bundle_virtual(root, "team/demo", 1)
    cert, key = make_tls_cert(tmp_path / "tls")
    with FtpServer(
        root, "--user", "mlops", "--password-env", "FTP_PW", "--tls-cert", str(cert),
        "--tls-key", str(key), env={"FTP_PW": PASSWORD},
    ) as srv:  # fmt: skip
        tls = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=str(cert)), timeout=10)
        tls.connect(srv.host, srv.port)
        tls.login("mlops", PASSWORD)
        tls.prot_p()
        whole = retr(tls, BUNDLE)
        assert hashlib.sha256(whole).hexdigest() == entry["sha256"]
        assert whole[:500_000] + retr(tls, BUNDLE, rest=500_000) == whole
        tls.quit()
