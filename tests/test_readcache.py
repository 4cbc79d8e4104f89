"""The read cache of the server (server/readcache.py): a cached answer is what the
registry answers, a change to the model is seen on the next read, and both of its
maps stay within their size."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.errors import NotFound
from registry_cli.server.readcache import ReadCache


def registry(tmp_path: Path, models: int = 1) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "root", actor="t")
    reg.init()
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    for i in range(models):
        reg.publish(f"m/n{i}", [weights], metrics={"acc": 0.5})
    return reg


def test_cached_json_is_the_registry_answer_and_follows_changes(tmp_path):
    reg = registry(tmp_path)
    cache = ReadCache()
    first = asyncio.run(cache.version_json(reg, "m/n0:v1"))
    assert json.loads(first) == reg.get("m/n0:v1").to_json()
    assert asyncio.run(cache.version_json(reg, "m/n0:v1")) is first  # a hit, same bytes
    reg.tag("m/n0", "v1", {"k": "v"}, [])  # a change: a new state file
    after = json.loads(asyncio.run(cache.version_json(reg, "m/n0:v1")))
    assert after["tags"] == {"k": "v"}
    assert cache.version_doc(reg, "m/n0:v1") == after


def test_a_missing_model_or_version_is_not_cached_and_says_so(tmp_path):
    reg = registry(tmp_path)
    cache = ReadCache()
    with pytest.raises(NotFound):
        asyncio.run(cache.version_json(reg, "m/nope:v1"))
    with pytest.raises(NotFound):
        asyncio.run(cache.version_json(reg, "m/n0:v9"))
    assert not cache.entries


def test_both_maps_stay_within_their_size(tmp_path):
    reg = registry(tmp_path, models=5)
    cache = ReadCache(size=3)
    for i in range(5):
        for ref in (f"m/n{i}:v1", f"m/n{i}:latest"):
            asyncio.run(cache.version_json(reg, ref))
    assert len(cache.entries) == 3
    assert len(cache.state_files) == 3
    assert list(cache.state_files) == ["m/n2", "m/n3", "m/n4"]  # the least recent went


def test_the_assembled_bundles_of_dist_stay_within_their_size(tmp_path):
    from registry_cli.core.served.bundle_files import DistBundles

    reg = registry(tmp_path, models=3)
    dist = DistBundles(reg.root / "dist", size=2)
    for i in range(3):
        dist.stream(str(reg.root / f"dist/dev/m/n{i}/versions/v1/bundle.tar.gz"))
    assert len(dist._cache) == 2
