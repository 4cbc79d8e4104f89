"""Pull versions from a served tree (FTP/FTPS or a folder) into the local cache.

``sources`` parses ``--from``; ``transports`` reads a served tree; ``remote``
reads its documents and checks fetched files against them; ``cache`` places and
installs verified versions, ``blobs`` holds each verified file once, ``prune`` frees
space; ``puller`` resolves, fetches and verifies;
``options`` builds a puller from flags and the ``pull:`` section.
"""

from registry_cli.pull.cache import MARKER, default_cache_root, resolve_cache_root
from registry_cli.pull.connect import open_transport
from registry_cli.pull.http import HttpTransport
from registry_cli.pull.options import PullSetup, configure
from registry_cli.pull.puller import (
    Puller,
    PullProgress,
    PullResult,
    RemoteVersion,
    check_against_manifest,
)
from registry_cli.pull.sources import DEFAULT_PORT, Source, parse_source
from registry_cli.pull.transports import Fetched, FtpTransport, LocalTransport, Transport

__all__ = [
    "DEFAULT_PORT",
    "MARKER",
    "Fetched",
    "FtpTransport",
    "HttpTransport",
    "LocalTransport",
    "PullProgress",
    "PullResult",
    "PullSetup",
    "Puller",
    "RemoteVersion",
    "Source",
    "Transport",
    "check_against_manifest",
    "configure",
    "default_cache_root",
    "open_transport",
    "parse_source",
    "resolve_cache_root",
]
