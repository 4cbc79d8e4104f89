"""The client side of FTP distribution, in the shape teams already use::

    from registry_cli.client import FtpModelClientConfig, get_ftp_model_registry_client

    client = get_ftp_model_registry_client(
        FtpModelClientConfig(host="models.example", port=2121, username="mlops",
                             password=os.environ["REGCTL_FTP_PASSWORD"]))
    bundle = client.get("release", "classification-best-model", "latest")
    weights = torch.load(bundle.preferred_weight_path, map_location="cpu", weights_only=True)

Versions land in the torch hub cache (``<hub>/regctl/<host>_<port>/<stage>/<name>/vN/``,
see :mod:`registry_cli.pull.cache`); a cached, verified version is not
downloaded again, and ``get(..., "vN")`` of a cached version needs no server.
``get_ftp_model_registry_client`` returns one client per distinct config.

Like ``regctl pull``, a client honours the ``pull:`` section of the
``registry.yaml`` it finds (``config=``, else ``$REGCTL_CONFIG``, ``./registry.yaml``,
the registry root's): ``from``, ``cache_dir``, ``password_env``/``password_file``,
``ca_cert`` and ``timeout_s`` fill in what the caller leaves out.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.core.config import Config, resolve_root_and_config
from registry_cli.errors import BadInput
from registry_cli.pull import PullResult, Source, configure
from registry_cli.pull.fleet import Reporter, manifest_sha256, pull_and_report, reporter_from

__all__ = [
    "FtpModelClientConfig",
    "FtpModelRegistryClient",
    "ModelBundle",
    "ModelRegistryClient",
    "get_ftp_model_registry_client",
]


@dataclass(frozen=True)
class FtpModelClientConfig:
    """Where the FTP server is and how to log in. ``username=None`` logs in anonymously."""

    host: str = "127.0.0.1"
    port: int = 2121
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_cert: str | None = None
    cache_dir: str | None = None
    timeout: float | None = None  # None: pull.timeout_s, else 30 s


@dataclass(frozen=True)
class ModelBundle:
    """A pulled, verified version in the local cache."""

    name: str
    stage: str
    version: str
    path: Path
    preferred_weight_path: Path
    manifest: dict[str, Any] = field(repr=False)
    sha256: str = ""
    cached: bool = False

    @classmethod
    def from_result(cls, r: PullResult) -> ModelBundle:
        return cls(
            name=r.name,
            stage=r.stage,
            version=r.version,
            path=r.path,
            preferred_weight_path=r.preferred_weight_path,
            manifest=r.manifest,
            sha256=r.sha256,
            cached=r.cached,
        )


class ModelRegistryClient:
    """Pulls from any served tree: an ``ftp://``/``ftps://`` or ``http://``/``https://``
    URL (token from ``token_env``'s variable or ``$REGCTL_TOKEN``) or a folder (local, NFS).

    Arguments left as None come from the ``pull:`` section (see the module docstring).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Source | None = None,
        *,
        password: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        config: str | os.PathLike[str] | Config | None = None,
        token_env: str | None = None,
        device: str | None = None,
        ring: str | None = None,
        report: bool = False,
        report_file: str | os.PathLike[str] | None = None,
    ) -> None:
        """``report``/``report_file`` (or ``fleet.report_url`` in the config) make every
        :meth:`get` report ``pulled`` or ``failed`` as ``device`` in ``ring``
        (docs/fleet.md); :meth:`report` sends what the caller observes (``healthy``)."""
        cfg = config if isinstance(config, Config) else resolve_root_and_config(None, config)[1]
        setup = configure(
            cfg,
            {
                "from": None if isinstance(source, Source) or source is None else os.fspath(source),
                "cache_dir": os.fspath(cache_dir) if cache_dir else None,
                "ca_cert": os.fspath(ca_cert) if ca_cert else None,
                "timeout_s": timeout,
                "token_env": token_env,
            },
            source=source if isinstance(source, Source) else None,
            password=password,
        )
        self._puller = setup.puller
        self.default_stage = setup.stage
        self._lock = threading.Lock()
        self.reporter: Reporter | None = None
        if report or report_file or cfg.section("fleet").get("report_url"):
            self.reporter = reporter_from(
                cfg,
                {"device": device, "ring": ring, "report_file": report_file and Path(report_file)},
                source=self._puller.source,
                cache_root=self._puller.cache_root,
                fallback_token=self._puller._token,
            )

    @property
    def cache_root(self) -> Path:
        return self._puller.cache_root

    def get(
        self,
        stage: str,
        name: str,
        version: str | int = "latest",
        *,
        offline: bool = False,
        alias: str | None = None,
    ) -> ModelBundle:
        """Return the version (``"latest"``, ``"v3"``, ``3``, or the one ``alias`` names,
        e.g. ``ring-canary``), downloading it only if needed."""
        with self._lock:
            result = pull_and_report(
                self._puller,
                self.reporter,
                name,
                stage=stage,
                version=version,
                alias=alias,
                offline=offline,
            )
            return ModelBundle.from_result(result)

    def report(
        self, bundle: ModelBundle, state: str, detail: str | dict[str, Any] | None = None
    ) -> str:
        """Report ``state`` (``running``, ``healthy``, ``unhealthy``...) for a pulled bundle:
        ``sent``, ``queued`` (in the outbox), ``written`` (report_file) or ``refused``."""
        if self.reporter is None:
            raise BadInput("this client does not report", hint="create it with report=True")
        return self.reporter.report(
            bundle.name,
            bundle.version,
            state,
            manifest_sha256=manifest_sha256(bundle.path),
            detail=detail,
        )

    def cached_versions(self, stage: str, name: str) -> list[str]:
        """Intact cached versions, newest first."""
        return [f"v{v}" for v in self._puller.cached_versions(stage, name)]


class FtpModelRegistryClient(ModelRegistryClient):
    """A :class:`ModelRegistryClient` built from an :class:`FtpModelClientConfig`."""

    def __init__(self, config: FtpModelClientConfig) -> None:
        self.config = config
        source = Source(
            kind="ftp", host=config.host, port=config.port, user=config.username, tls=config.tls
        )
        super().__init__(
            source,
            password=config.password,
            cache_dir=config.cache_dir,
            ca_cert=config.ca_cert,
            timeout=config.timeout,
        )


_clients: dict[FtpModelClientConfig, FtpModelRegistryClient] = {}
_clients_lock = threading.Lock()


def get_ftp_model_registry_client(
    config: FtpModelClientConfig | None = None,
) -> FtpModelRegistryClient:
    """One shared client per distinct config (thread-safe)."""
    config = config or FtpModelClientConfig()
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            client = _clients[config] = FtpModelRegistryClient(config)
        return client
