"""A real OCI registry on loopback for the tests: Debian's ``docker-registry``
(distribution 2.8) with filesystem storage in a temp folder, started and stopped by
its own handle (never by name). Optionally with ``htpasswd -B`` Basic auth.

    with OciRegistry(tmp_path / "reg") as registry:
        registry.host        # "127.0.0.1:PORT", for docker://HOST/REPO:TAG
        registry.url         # "http://127.0.0.1:PORT"
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.s3_helpers import free_port

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


def have_registry() -> bool:
    return Path(REGISTRY).is_file() and Path(SKOPEO).is_file()


class OciRegistry:
    """``docker-registry serve config.yml`` on 127.0.0.1 and a free port."""

    def __init__(
        self, folder: Path, *, user: str | None = None, password: str | None = None
    ) -> None:
        self.folder = folder
        self.user = user
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> OciRegistry:
        self.folder.mkdir(parents=True, exist_ok=True)
        storage = self.folder / "storage"
        storage.mkdir(exist_ok=True)
        auth = ""
        if self.user is not None:
            htpasswd = self.folder / "htpasswd"
            out = subprocess.run(
                ["htpasswd", "-nbB", self.user, self.password or ""],
                capture_output=True,
                check=True,
            ).stdout
            htpasswd.write_bytes(out.strip() + b"\n")
            auth = f"auth:\n  htpasswd:\n    realm: regctl-test\n    path: {htpasswd}\n"
        config = self.folder / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
            f"{auth}"
        )
        log = open(self.folder / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            [REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_text()}")
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=2).close()
                return self
            except urllib.error.HTTPError:
                return self  # 401 with auth: it is up
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("docker-registry did not start in 30 s")

    def log_text(self) -> str:
        path = self.folder / "registry.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> OciRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run skopeo with no user policy or auth file of this machine."""
    return subprocess.run(
        [SKOPEO, "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
