"""The audit log of an s3 root: one object per entry, read back in commit order.

An entry is the object ``audit/<time ns>-<seq>-<random>`` holding one JSON line.
An append creates a new object and never rewrites one, so concurrent appends
never lose or interleave entries. ``seq`` is the commit number of the model
state the entry follows (one more per commit, kept in the state object's
metadata by ``S3Store.replace``); 0 for entries that follow no commit.

Readers list the entries in time order. Clocks of different writers may
disagree, and a writer may append a moment after a later commit of the same
model has been appended; so the slots a model's entries occupy are refilled in
``seq`` order, and replaying the log reproduces every model's state.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator


def entry_name(seq: int) -> str:
    return f"{time.time_ns():020d}-{seq:012d}-{uuid.uuid4().hex[:12]}"


def seq_of(name: str) -> int:
    parts = name.split("-")
    try:
        return int(parts[1]) if len(parts) >= 3 else 0
    except ValueError:
        return 0


def commit_order(bodies: list[bytes], seqs: list[int]) -> Iterator[bytes]:
    """Entries in time order, except that each model's committed changes keep the
    order of their commits (``seq``). Entries without a ``seq`` stay where they are."""
    slots: dict[str, list[int]] = {}
    for i, (body, seq) in enumerate(zip(bodies, seqs, strict=True)):
        if seq:
            with contextlib.suppress(ValueError, AttributeError):
                model = json.loads(body).get("model")
                if isinstance(model, str):
                    slots.setdefault(model, []).append(i)
    order = list(range(len(bodies)))
    for positions in slots.values():
        for slot, source in zip(positions, sorted(positions, key=lambda i: seqs[i]), strict=True):
            order[slot] = source
    for i in order:
        body = bodies[i]
        yield body if body.endswith(b"\n") else body + b"\n"
