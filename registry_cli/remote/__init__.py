"""``RemoteRegistry``: a registry server used like a root (SPEC §9 "Remote use")."""

from registry_cli.remote.registry import RemoteRegistry

__all__ = ["RemoteRegistry"]
