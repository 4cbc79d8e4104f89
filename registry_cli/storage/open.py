"""Which :class:`Store` a root names: ``s3://BUCKET/PREFIX`` → :class:`S3Store`, else a folder.

The endpoint of an s3 root comes from ``$REGCTL_S3_ENDPOINT_URL``, else
``$AWS_ENDPOINT_URL``, else ``s3: {endpoint_url}`` in the config; the region
from ``s3: {region}`` (else the AWS chain); credentials always from the AWS
chain (environment, profile), never from the config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.settings import S3
from registry_cli.storage.cache_root import default_cache_root, store_cache_root
from registry_cli.storage.fs_store import FsStore
from registry_cli.storage.store import Store

if TYPE_CHECKING:
    from registry_cli.storage.s3_client import S3Options


def s3_options(config_section: Mapping[str, Any] | None = None) -> S3Options:
    """The ``s3:`` settings: environment first, then the config file."""
    from registry_cli.storage.s3_client import S3Options

    got = S3.resolve({}, config_section)
    return S3Options(
        endpoint_url=got["endpoint_url"],
        region=got["region"],
        unsafe_single_writer=bool(got["unsafe_single_writer"]),
    )


__all__ = ["default_cache_root", "local_version", "open_store", "s3_options"]


def open_store(
    location: str | os.PathLike[str],
    config_section: Mapping[str, Any] | None = None,
    *,
    cache_root: Path | None = None,
) -> Store:
    """The store of a root: ``s3://BUCKET/PREFIX`` or a folder path.

    The S3 modules load only for an s3 root (a folder command needs none of them),
    so the scheme is tested here, as ``s3_client.is_s3_url`` does."""
    if isinstance(location, str) and location.startswith("s3://"):
        from registry_cli.storage.s3_store import S3Store

        return S3Store(
            str(location), s3_options(config_section), cache_root=cache_root or store_cache_root()
        )
    return FsStore(Path(location))


def local_version(store: Store, key: str) -> Path:
    """A local folder holding the version ``key`` (``models/<name>/vN``): the folder
    itself on a folder root; on an object store, the verified copy in the local cache
    (downloaded once)."""
    fetch = getattr(store, "fetch_version", None)
    if fetch is not None:
        return Path(fetch(key))
    return store.local_path(key)
