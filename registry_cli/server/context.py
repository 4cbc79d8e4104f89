"""What every route of one server shares: the root, its config, the token book, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from registry_cli.core.config import Config
from registry_cli.core.registry import ModelRegistry
from registry_cli.core.tokens import Tokens
from registry_cli.server.ftp_children import FtpChildren
from registry_cli.server.readcache import ReadCache


@dataclass
class ServerContext:
    root: Path | str
    config: Config
    anonymous_read: bool = False
    max_upload_size: int = 50 * 1024**3
    auth_delay_s: float = 0.3  # before every 401: guessing tokens stays slow
    token_cache_s: float = 5.0  # how long a token check or a session is trusted unread
    drain_timeout_s: float = 30.0  # SIGTERM: how long requests in flight may run on
    log_format: str = "text"  # or "json" (server/logging_json.py)
    ftp: FtpChildren | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.base = ModelRegistry(self.root, config=self.config, actor="regctl-server")
        self.tokens = Tokens(
            self.base.store, self.base.states, self.base.actor, cache_s=self.token_cache_s
        )
        self.reads = ReadCache()

    def registry(self, actor: str) -> ModelRegistry:
        """The registry acting as ``actor`` (a token's name: what the audit records)."""
        return ModelRegistry(
            self.root, config=self.base.config, actor=actor, store=self.base.store
        )  # one store for every request: no per-request set-up
