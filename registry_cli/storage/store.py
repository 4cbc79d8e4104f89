"""The storage seam: every byte the core reads or writes goes through a :class:`Store`.

Keys are ``/``-separated paths relative to the registry root
(``models/team/ppe/model.yaml``), laid out as docs/layout.md describes. A store offers
plain reads and writes plus the two conditional writes every commit is made of:

* ``create(key, data)``: create-if-absent (S3 ``If-None-Match: *``); raises
  :class:`AlreadyExists` when the key exists.
* ``replace(key, data, if_match=tag)``: replace-if-unchanged (S3 ``If-Match:
  ETag``); raises :class:`Conflict` when the object is no longer the one read
  with :meth:`read_tagged`.

Commit protocol (``core/models.py`` implements it, for every backend):

1. read the model state and its tag (``read_tagged``);
2. apply a pure rule (``core/lifecycle.py``) to the state in memory;
3. ``replace`` the state with ``if_match=tag``. That write is the commit
   point. On :class:`Conflict` go back to 1 and apply the rule to the new
   state: a rule whose preconditions no longer hold is refused, never re-done
   blindly.

A version's files are staged in a private scratch folder, then made visible
under ``models/<name>/vN/`` by :meth:`install_folder` (never over an existing
folder); a version folder the state does not list is invisible to readers and
``gc`` removes it. ``lock`` serialises writers of one model where the backend
can (``flock`` on a folder root), which makes conflicts rare; correctness
comes from the conditional writes, so a backend without locks (object
storage) returns a no-op lock.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import threading

    from registry_cli.storage.hashing import Progress


class StoreError(Exception):
    """Base of the store's own conditions (not user errors: the core maps them)."""


class AlreadyExists(StoreError):
    """``create`` found the key already there."""


class Conflict(StoreError):
    """``replace`` found the object changed since it was read."""


class Missing(StoreError, FileNotFoundError):
    """The key does not exist."""


@dataclass(frozen=True)
class Tagged:
    """Bytes read together with the tag that a later ``replace`` must match."""

    data: bytes
    tag: str


class Store(ABC):
    """A registry root: a folder today, an object-store prefix next (see docs/object-storage.md)."""

    #: how the root is named to users (a path or a URL)
    location: str

    # -- documents ------------------------------------------------------
    @abstractmethod
    def read(self, key: str) -> bytes:
        """The whole object (small documents only); :class:`Missing` if absent."""

    @abstractmethod
    def read_tagged(self, key: str) -> Tagged:
        """The object and its tag, for a later conditional ``replace``."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> str:
        """Create ``key`` if it does not exist; return its tag."""

    @abstractmethod
    def replace(self, key: str, data: bytes, *, if_match: str) -> str:
        """Replace ``key`` if it is still the object tagged ``if_match``; return the new tag."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Replace ``key`` unconditionally but atomically (derived documents: ``dist/``)."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove one object; False when it was not there."""

    # -- append-only log ------------------------------------------------
    @abstractmethod
    def append(self, key: str, line: bytes) -> None:
        """Append one line (the audit log) so that concurrent writers never interleave."""

    @abstractmethod
    def lines(self, key: str) -> Iterator[bytes]:
        """The lines of an append-only log, oldest first (nothing if absent)."""

    # -- listing and streaming -----------------------------------------
    @abstractmethod
    def kind(self, key: str) -> str | None:
        """``"file"``, ``"dir"``, ``"link"`` or None when nothing is there."""

    @abstractmethod
    def children(self, key: str) -> list[str]:
        """Names directly below ``key``, sorted ([] when absent)."""

    @abstractmethod
    def walk_files(self, key: str) -> Iterator[str]:
        """Every file below ``key``, as keys relative to ``key``."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object."""

    @abstractmethod
    def hash(self, key: str, progress: Progress | None = None) -> tuple[int, str]:
        """``(size, sha256)`` of the object, streamed."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """A local path holding the object (the object itself on a folder root)."""

    # -- versions -------------------------------------------------------
    @abstractmethod
    def scratch(self, kind: str) -> contextlib.AbstractContextManager[Path]:
        """A private local folder for staging, removed afterwards; ``gc`` spares live ones."""

    @abstractmethod
    def install_folder(self, staging: Path, key: str) -> None:
        """Make a staged folder visible at ``key``, read-only, never over an existing one."""

    @abstractmethod
    def remove_tree(self, key: str) -> None:
        """Remove everything at and below ``key`` (missing is fine)."""

    @abstractmethod
    def leftover_scratch(self) -> list[tuple[str, bool]]:
        """Scratch folders present, each with whether a live process still uses it."""

    # -- the served tree ------------------------------------------------
    @abstractmethod
    def copy_files(self, src: str, dst: str, files: list[str]) -> None:
        """Publish ``src/<f>`` for each ``f`` as ``dst/<f>`` in one visible step (hard
        links where possible); ``dst`` must not exist yet."""

    @abstractmethod
    def copy_file(self, src: str, dst: str) -> None:
        """Replace ``dst`` with the content of ``src`` (a hard link where possible)."""

    @abstractmethod
    def same_content(self, src: str, dst: str) -> bool:
        """True when ``dst`` is a regular file with ``src``'s bytes."""

    # -- blobs (content-addressed payload, see docs/layout.md) -----------
    def blobs_root(self) -> Path | None:
        """The local folder root whose ``blobs/`` a publish writes into directly, if any."""
        return None

    def put_blobs(
        self,
        blobs: list[tuple[Path, str]],
        stop: threading.Event | None = None,
        announce: Callable[[list[str]], None] | None = None,
    ) -> list[str]:
        """Make sure blob ``sha`` exists for each ``(local file, sha)``, uploading those
        missing from the local file (object stores; a folder root writes its own).
        Returns the sha256 of the blobs uploaded. Once ``stop`` is set no new upload or
        part starts (an interrupted publish waits only for those in flight).
        ``announce`` is called with the missing ones before the first upload starts
        (not at all when every blob exists)."""
        return []

    def payload_key(self, vkey: str, path: str, sha256: str) -> str:
        """Where the payload file ``path`` (``payload/...``) of version ``vkey`` is read."""
        return f"{vkey}/{path}"

    # -- concurrency ----------------------------------------------------
    @abstractmethod
    def lock(self, key: str, *, what: str) -> contextlib.AbstractContextManager[None]:
        """Serialise writers on ``key`` where the backend can; a no-op elsewhere."""
