"""``RemoteRegistry``: a registry server used like a root (see docs/server.md)."""

from registry_cli.remote.registry import RemoteRegistry

__all__ = ["RemoteRegistry"]
