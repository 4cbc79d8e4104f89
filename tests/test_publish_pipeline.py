"""Publishing's pass over a payload: the CRC-32 combined from each file's, the kernel
copy hashed as written (and its read/write fallback), an unchanged re-publish read
from its blob; every bundle equal, byte for byte, to the one ``bundle_stream``
assembles from the blobs and to its recorded sha256 and size."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import zlib
from pathlib import Path

import pytest
import yaml

from registry_cli import ModelRegistry
from registry_cli.core.served.bundle_files import version_stream
from registry_cli.errors import BadInput
from registry_cli.storage import fs_blobs, pump
from registry_cli.storage.bundle import BundleWriter
from registry_cli.storage.crc import crc32_combine
from registry_cli.storage.payload import PlannedFile
from registry_cli.storage.payload_copy import write_payload_and_bundle
from tests.cas_helpers import assemble, bundle_bytes

EDGE = [0, 1, 2, 3, 511, 512, 65_534, 65_535, 65_536, 65_537, 131_071, 1 << 20, 1_000_003]


@pytest.mark.parametrize("len_a", [0, 1, 7, 65_535, 65_536, 99_999])
def test_crc32_combine_matches_zlib_of_the_concatenation(len_a):
    rnd = random.Random(len_a)
    a = rnd.randbytes(len_a)
    for len_b in EDGE:
        b = rnd.randbytes(len_b)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len_b) == zlib.crc32(a + b)


def test_the_pumps_crc32_is_zlibs():
    rnd = random.Random(5)
    for n in EDGE:
        data = rnd.randbytes(n)
        assert pump.crc32(memoryview(data), 0) == zlib.crc32(data)
        assert pump.crc32(memoryview(data), 12345) == zlib.crc32(data, 12345)


def test_crc32_combine_of_large_lengths_and_bad_input():
    # appending 2**33 zero bytes, composed from smaller steps, equals one step
    crc = 0x12345678
    step = crc32_combine(crc32_combine(crc, 0, 1 << 32), 0, 1 << 32)
    assert crc32_combine(crc, 0, 1 << 33) == step
    assert crc32_combine(5, 9, 0) == 5
    with pytest.raises(ValueError):
        crc32_combine(0, 0, -1)


def test_bundle_writer_with_the_crc_given_later_writes_the_same_bytes(tmp_path):
    data = random.Random(3).randbytes(300_001)

    def write(given: bool) -> bytes:
        out = tmp_path / f"b{given}"
        with open(out, "wb") as fh:
            w = BundleWriter(fh.fileno(), level=0, mtime=1_700_000_000)
            w.add_dir("payload")
            w.begin_file("payload/x", len(data))
            for pos in range(0, len(data), 70_000):
                w.feed(memoryview(data)[pos : pos + 70_000], crc=not given)
            w.end_file(len(data), zlib.crc32(data) if given else None)
            w.add_bytes("manifest.json", b"{}")
            w.close()
        return out.read_bytes()

    assert write(True) == write(False)


def artifact(tmp_path: Path, sizes=(3_000_001, 65_535, 0, 12, 4 << 20)) -> Path:
    src = tmp_path / "art"
    (src / "sub").mkdir(parents=True)
    rnd = random.Random(11)
    for i, size in enumerate(sizes):
        (src / ("sub" if i % 2 else ".") / f"f{i}.bin").write_bytes(rnd.randbytes(size))
    return src


def check_version(reg: ModelRegistry, name: str, version: int) -> bytes:
    """The version's bundle assembled by bundle_stream equals what publish hashed and
    the serial writer's framing of its payload; every payload file is its blob."""
    vdir = reg.root / "models" / name / f"v{version}"
    stream = version_stream(reg.store, name, version)
    assert stream is not None
    data = b"".join(bytes(c) for c in stream.iter_range())
    entry = yaml.safe_load((vdir / "version.yaml").read_text())["bundle"]
    assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])
    assert data == bundle_bytes(vdir) == assemble(vdir, int(entry["mtime"]))
    for f in json.loads((vdir / "manifest.json").read_bytes())["files"]:
        body = (vdir / f["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == f["sha256"]
        assert fs_blobs.blob_path(reg.root, f["sha256"]).read_bytes() == body
    return data


@pytest.fixture
def small_chunks(monkeypatch):
    """Many kernel-copy chunks, of a size that is no multiple of the 65,535-byte blocks."""
    monkeypatch.setattr(pump, "KERNEL_CHUNK", 1 << 16)
    monkeypatch.setattr(pump, "KERNEL_COPY", [hasattr(os, "copy_file_range")])


def test_kernel_copy_publish_matches_the_assembled_bundle(tmp_path, small_chunks):
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [artifact(tmp_path)])
    check_version(reg, "m", 1)
    assert reg.verify().ok


@pytest.mark.parametrize("err", [errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP])
def test_copy_falls_back_to_read_and_write_where_the_kernel_refuses(
    tmp_path, monkeypatch, small_chunks, err
):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [artifact(tmp_path)])
    if err == errno.ENOSYS:  # no such call: asked once, then read/write for every file
        assert len(calls) == 1 and pump.KERNEL_COPY == [False]
    else:  # refused for these files: asked again for each new file
        assert len(calls) == 4 and pump.KERNEL_COPY == [True]
    check_version(reg, "m", 1)
    assert not [p for p in (reg.root / "blobs" / "sha256").glob(".*")]  # no temp left


def test_a_filesystem_that_copies_nothing_is_read_and_written(tmp_path, monkeypatch, small_chunks):
    monkeypatch.setattr(os, "copy_file_range", lambda *a, **k: 0, raising=False)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [artifact(tmp_path)])
    check_version(reg, "m", 1)


def test_a_kernel_copy_error_other_than_unsupported_fails_the_publish(
    tmp_path, monkeypatch, small_chunks
):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", full, raising=False)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    with pytest.raises(OSError, match="No space"):
        reg.publish("m", [artifact(tmp_path)])
    assert reg.list_versions("m") == []
    assert not [p for p in (reg.root / "blobs" / "sha256").glob(".*")]


@pytest.mark.parametrize("new_size", [0, 10, 70_000, 200_000])
def test_a_source_that_changes_size_during_the_kernel_copy_is_refused(
    tmp_path, monkeypatch, small_chunks, new_size
):
    src = tmp_path / "f.bin"
    src.write_bytes(random.Random(1).randbytes(150_000))
    real = os.copy_file_range
    resized = []

    def resize_then_copy(*args, **kwargs):
        if not resized:
            resized.append(True)
            src.write_bytes(b"z" * new_size)
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "copy_file_range", resize_then_copy)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    with pytest.raises(BadInput, match="changed size"):
        reg.publish("m", [src])
    assert reg.list_versions("m") == []
    assert not [p for p in (reg.root / "blobs" / "sha256").glob(".*")]


def test_republish_reads_the_blob_and_uses_the_recorded_crc(tmp_path, monkeypatch):
    src = artifact(tmp_path)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [src])
    seen = json.loads((reg.root / fs_blobs.SEEN).read_text())
    for path in sorted(src.rglob("*.bin")):
        body = path.read_bytes()
        entry = seen[fs_blobs.identity(path)]
        assert entry == [hashlib.sha256(body).hexdigest(), zlib.crc32(body)]
    read = []
    real_run = pump.Pump.run

    def spy(self, item, source, out, **kw):
        read.append((Path(source), kw.get("stable", False), kw.get("known_crc")))
        return real_run(self, item, source, out, **kw)

    monkeypatch.setattr(pump.Pump, "run", spy)
    reg.publish("n", [src])
    blobs = reg.root / "blobs"
    non_empty = [r for r in read if r[0].stat().st_size]
    assert non_empty and all(blobs in r[0].parents and r[1] and r[2] is not None for r in read)
    assert check_version(reg, "n", 1) != check_version(reg, "m", 1)  # other name, mtime


def test_republish_after_an_older_hashed_json_computes_the_crc(tmp_path):
    src = artifact(tmp_path, sizes=(200_000, 3))
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [src])
    seen_file = reg.root / fs_blobs.SEEN
    old = {k: v[0] for k, v in json.loads(seen_file.read_text()).items()}  # sha only
    seen_file.write_text(json.dumps({**old, "junk": [1, 2], "bad": ["x" * 64, -1]}))
    assert all(v[1] is None for v in fs_blobs.load_seen(reg.root).values())
    assert "junk" not in fs_blobs.load_seen(reg.root)
    reg.publish("n", [src])
    check_version(reg, "n", 1)
    again = json.loads(seen_file.read_text())
    assert all(isinstance(again[k], list) for k in old)


def test_a_republish_whose_source_changed_is_read_from_the_source(tmp_path):
    src = artifact(tmp_path, sizes=(200_000,))
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [src])
    path = src / "f0.bin"
    path.write_bytes(random.Random(99).randbytes(200_000))  # same size, other bytes
    reg.publish("n", [src])
    check_version(reg, "n", 1)
    manifest = json.loads((reg.root / "models" / "n" / "v1" / "manifest.json").read_bytes())
    assert manifest["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_stored_level0_bundle_of_the_pipeline_equals_the_serial_framing(tmp_path, small_chunks):
    """A written bundle file (``store_bundle``) has the bytes the serial writer frames."""
    src = artifact(tmp_path)
    vdir = tmp_path / "v"
    vdir.mkdir()
    files = sorted(p for p in src.rglob("*") if p.is_file())
    planned = [PlannedFile(p, p.relative_to(src).as_posix(), p.stat().st_size) for p in files]

    def manifest(records) -> bytes:
        return json.dumps({"files": [{"path": r.path} for r in records]}).encode()

    _records, (size, digest), copies = write_payload_and_bundle(
        planned, vdir, manifest, mtime=1_700_000_000, blobs_root=tmp_path / "root"
    )
    assert copies == 0
    data = (vdir / "bundle.tar.gz").read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest)
    assert data == assemble(vdir, 1_700_000_000)
