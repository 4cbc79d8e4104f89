"""The one default cache folder of regctl (stdlib only: cheap to import for ``pull``)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_root() -> Path:
    """The torch hub folder, computed the way ``torch.hub.get_dir()`` does, without torch:
    ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``.
    The one default of every regctl cache (pulls and object-store roots keep theirs
    under its ``regctl/``)."""
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        return Path(os.path.expanduser(torch_home)) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(os.path.expanduser(xdg)) if xdg else Path.home() / ".cache"
    return base / "torch" / "hub"


def store_cache_root() -> Path:
    """Where an object-store root keeps local copies: ``$REGCTL_CACHE_DIR``, else
    :func:`default_cache_root`'s ``regctl/`` (the folder ``pull`` uses)."""
    chosen = os.environ.get("REGCTL_CACHE_DIR")
    if chosen:
        return Path(os.path.expanduser(chosen)).absolute()
    return default_cache_root().absolute() / "regctl"
