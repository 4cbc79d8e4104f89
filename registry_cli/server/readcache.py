"""A cache of resolved versions for the read routes, keyed by the model's state.

What ``resolve``/``show`` answer depends only on the model's state document
(aliases, stages, statuses, tags), on the version's immutable files and on
the server's config. Every change replaces the state document, which gives it
a new store tag (a new file on a folder root, a new ETag on an object store),
so an answer cached under ``(reference, options, tag)`` is never stale: each
read fetches the state's tag and reuses the answer while the tag is the same.
Reads stay as fast on a model of 10,000 versions as on one of 10.

On a folder root the tag is one ``stat`` of the state file (inode, size and
mtime: what ``FsStore`` tags a file with), whose path is resolved and checked
inside the root once per model, not on every read; such a hit is cheap enough
to answer on the event loop (:meth:`ReadCache.version_json`). On an object
store the tag is a request, made in a worker thread. Both caches are LRUs of
``size`` entries, so a server's memory does not grow with the versions read.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import anyio.to_thread
from pydantic_core import to_json

from registry_cli.core.refs import parse_ref
from registry_cli.core.registry import ModelRegistry
from registry_cli.storage import layout
from registry_cli.storage.fs_store import FsStore
from registry_cli.storage.store import Missing, Store


class ReadCache:
    def __init__(self, size: int = 2048) -> None:
        self.size = size
        # key -> (the document, its JSON as the API sends it)
        self.entries: OrderedDict[tuple[Any, ...], tuple[dict[str, Any], bytes]] = OrderedDict()
        self.state_files: OrderedDict[str, str] = OrderedDict()  # model -> its state file
        self.lock = threading.Lock()

    # ---------------------------------------------------------------- tags
    def _state_file(self, store: FsStore, name: str) -> str:
        with self.lock:
            found = self.state_files.get(name)
            if found is not None:
                self.state_files.move_to_end(name)
                return found
        path = str(store.local_path(layout.state_key(name)))  # checked inside the root
        with self.lock:
            self.state_files[name] = path
            while len(self.state_files) > self.size:
                self.state_files.popitem(last=False)
        return path

    def _tag(self, store: Store, name: str) -> str | None:
        if isinstance(store, FsStore):
            try:
                st = os.stat(self._state_file(store, name))
            except (FileNotFoundError, NotADirectoryError):
                return None  # reg.get says what is missing
            return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"
        try:
            return store.read_tagged(layout.state_key(name)).tag
        except Missing:
            return None

    def _hit(self, key: tuple[Any, ...]) -> tuple[dict[str, Any], bytes] | None:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
            return found

    # ---------------------------------------------------------------- reads
    def entry(
        self,
        reg: ModelRegistry,
        ref: str,
        *,
        stage: str | None = None,
        metric: str | None = None,
        mode: str | None = None,
        with_bundle: bool = True,
    ) -> tuple[dict[str, Any], bytes]:
        """``reg.get(ref, ...).to_json()`` and its JSON bytes, from the cache while the
        model's state is unchanged."""
        tag = self._tag(reg.store, parse_ref(ref).name)
        key = (ref, stage, metric, mode, with_bundle, tag)
        if tag is not None and (found := self._hit(key)) is not None:
            return found
        doc = reg.get(ref, stage=stage, metric=metric, mode=mode, with_bundle=with_bundle).to_json()
        made = (doc, to_json(doc))
        if tag is not None:
            with self.lock:
                self.entries[key] = made
                while len(self.entries) > self.size:
                    self.entries.popitem(last=False)
        return made

    def version_doc(self, reg: ModelRegistry, ref: str, **options: Any) -> dict[str, Any]:
        """The document of :meth:`entry` (callers must not change it: it is shared)."""
        return self.entry(reg, ref, **options)[0]

    def cached_json(self, reg: ModelRegistry, ref: str) -> bytes | None:
        """The JSON of ``show`` (no options) of ``ref`` if the cache holds it for the
        model's current state, else None (never reads more than the state's tag)."""
        try:
            tag = self._tag(reg.store, parse_ref(ref).name)
        except Exception:  # noqa: BLE001 - a reference the route refuses: not cached
            return None
        if tag is None:
            return None
        found = self._hit((ref, None, None, None, True, tag))
        return None if found is None else found[1]

    async def version_json(self, reg: ModelRegistry, ref: str, **options: Any) -> bytes:
        """The JSON bytes of :meth:`entry`, for an ``async`` route: a hit on a folder root
        is answered on the event loop (a ``stat``), anything else in a worker thread."""
        if isinstance(reg.store, FsStore):
            tag = self._tag(reg.store, parse_ref(ref).name)
            key = (
                ref,
                options.get("stage"),
                options.get("metric"),
                options.get("mode"),
                options.get("with_bundle", True),
                tag,
            )
            if tag is not None and (found := self._hit(key)) is not None:
                return found[1]
        made = await anyio.to_thread.run_sync(lambda: self.entry(reg, ref, **options))
        return made[1]
