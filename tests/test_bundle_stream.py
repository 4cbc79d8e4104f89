"""A level-0 bundle is a pure function of its members, manifest and mtime, and
``bundle_stream`` assembles exactly those bytes from the payload files: whole,
by any range, in another process, with damaged sources refused (docs/layout.md)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile

import pytest
import yaml

from registry_cli import ModelRegistry
from registry_cli.core.served.bundle_files import DistBundles, stream_digest, version_stream
from registry_cli.errors import IntegrityError
from registry_cli.storage.bundle import BundleWriter, HashOnly
from registry_cli.storage.bundle_stream import (
    BundleLayout,
    BundleStream,
    DamagedSource,
    FolderSource,
    Member,
)
from tests.bundle_virtual import (
    bundle_facts,
    make_bundle_virtual,
    publish_with_bundle_file,
    sha256_of,
)
from tests.cas_helpers import bundle_bytes


def artifact(tmp_path, sizes=(3_000_000, 65_535, 0, 12)):
    src = tmp_path / "art"
    (src / "sub" / "deep").mkdir(parents=True)
    rnd = random.Random(7)
    names = ["w.bin", "sub/b.bin", "sub/empty", "sub/deep/a.txt"]
    for name, size in zip(names, sizes, strict=True):
        (src / name).write_bytes(rnd.randbytes(size))
    return src


def published(tmp_path, **config):
    root = tmp_path / "registry"
    reg = ModelRegistry(root)
    reg.init()
    if config:
        (root / "registry.yaml").write_text("".join(f"{k}: {v}\n" for k, v in config.items()))
        reg = ModelRegistry(root)
    reg.publish("team/demo", [artifact(tmp_path)])
    return root, reg


class ListSink:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, parts) -> None:
        for p in parts:
            self.out += p


def _write(chunking: list[int], data: bytes, sink) -> tuple[int, str]:
    w = BundleWriter(sink, level=0, mtime=1_700_000_000)
    w.add_dir("payload")
    w.begin_file("payload/x.bin", len(data))
    pos = 0
    for n in chunking:
        w.feed(memoryview(data)[pos : pos + n])
        pos += n
    w.feed(memoryview(data)[pos:])
    w.end_file(len(data))
    w.add_bytes("manifest.json", b"{}")
    return w.close()


def test_the_framing_does_not_depend_on_how_the_source_was_read():
    data = random.Random(1).randbytes(400_000)
    outs = []
    for chunking in ([], [1, 2, 3], [65_535, 65_535], [100_000, 7, 200_000], [70_000] * 5):
        sink = ListSink()
        size, sha = _write(chunking, data, sink)
        assert size == len(sink.out) and sha == sha256_of(bytes(sink.out))
        outs.append(bytes(sink.out))
    assert len(set(outs)) == 1
    assert _write([4096] * 9, data, HashOnly()) == (len(outs[0]), sha256_of(outs[0]))
    with tarfile.open(fileobj=io.BytesIO(outs[0]), mode="r:gz") as tar:
        assert tar.extractfile("payload/x.bin").read() == data
    layout = BundleLayout(
        [Member("payload/x.bin", len(data), sha256_of(data))], b"{}", 1_700_000_000
    )
    assert layout.size == len(outs[0])


def test_the_assembled_bundle_is_the_published_one_whole_and_by_range(tmp_path):
    root, _reg = published(tmp_path)
    vdir = root / "models" / "team/demo" / "v1"
    real = bundle_bytes(vdir)  # written by the bundle writer, checked against version.yaml
    entry = make_bundle_virtual(root, "team/demo", 1)
    assert sha256_of(real) == entry["sha256"] and len(real) == entry["size"]
    stream = BundleLayout.from_manifest((vdir / "manifest.json").read_bytes(), entry["mtime"])
    bs = BundleStream(stream, FolderSource(vdir))
    assert bs.size == len(real)
    assert bs.read(0, bs.size) == real
    rnd = random.Random(3)
    edges = [0, 1, 9, 10, 11, 14, 15, 65_549, 65_550, len(real) - 13, len(real) - 8, len(real) - 1]
    for _ in range(120):
        a = rnd.choice(edges + [rnd.randrange(len(real))])
        b = rnd.choice([a, a + 1, a + 5, a + 70_000, len(real), rnd.randrange(a, len(real) + 1)])
        assert bs.read(a, b - a) == real[a : min(b, len(real))], (a, b)
    f = bs.open()
    f.seek(2_000_001)
    assert f.read(65_536) + f.read() == real[2_000_001:]
    assert f.read(10) == b""


def test_read_by_a_fresh_process_from_a_range_first(tmp_path):
    """A read starting mid-file in a new process (no CRC known yet) is still exact."""
    root, reg = published(tmp_path)
    entry = make_bundle_virtual(root, "team/demo", 1)
    script = (
        "import sys, hashlib\n"
        "from pathlib import Path\n"
        "from registry_cli import ModelRegistry\n"
        "from registry_cli.core.served.bundle_files import version_stream\n"
        "s = version_stream(ModelRegistry(Path(sys.argv[1])).store, 'team/demo', 1)\n"
        "tail = s.read(1_500_000, s.size)\n"
        "head = s.read(0, 1_500_000)\n"
        "print(hashlib.sha256(head + tail).hexdigest(), s.size)\n"
    )
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script, str(root)], capture_output=True, text=True, check=True
        )
        assert out.stdout.split() == [entry["sha256"], str(entry["size"])]


def test_version_stream_and_verify_on_a_virtual_version(tmp_path, cli):
    root, reg = published(tmp_path)
    entry = make_bundle_virtual(root, "team/demo", 1)
    stream = version_stream(reg.store, "team/demo", 1)
    assert stream is not None
    assert stream_digest(stream) == (entry["size"], entry["sha256"])
    res = cli("verify", root_dir=root)
    assert res.exit_code == 0, res.stdout + res.stderr
    dist = DistBundles(root / "dist")
    served = dist.stream(str(root / "dist/dev/team/demo/versions/v1/bundle.tar.gz"))
    assert served is not None and served.sha256 == entry["sha256"]
    # a version with a bundle file is served from it: no virtual one
    publish_with_bundle_file(
        root, "team/demo", [artifact(tmp_path / "two", sizes=(10, 20, 30, 40))]
    )
    assert dist.stream(str(root / "dist/dev/team/demo/versions/v2/bundle.tar.gz")) is None
    assert version_stream(reg.store, "team/demo", 2) is None


def test_a_damaged_payload_file_fails_the_stream_and_verify(tmp_path, cli):
    root, reg = published(tmp_path)
    make_bundle_virtual(root, "team/demo", 1)
    target = root / "models/team/demo/v1/payload/art/w.bin"
    data = bytearray(target.read_bytes())
    data[1234] ^= 0xFF
    os.chmod(target, 0o644)
    with open(target, "r+b") as fh:  # in place: the dist/ hard link sees it too
        fh.write(data)
    stream = version_stream(reg.store, "team/demo", 1)
    assert stream is not None
    sent = bytearray()
    with pytest.raises(DamagedSource, match="payload/art/w.bin is damaged"):
        for chunk in stream.iter_range():
            sent += chunk
    # the damaged file never left whole: the stream stopped inside it
    assert len(sent) < 3_000_000
    with pytest.raises(DamagedSource):
        stream.read(2_000_000, 10)  # a range inside the file: the whole file is hashed first
    res = cli("verify", root_dir=root)
    assert res.exit_code == 5
    assert "w.bin" in res.stdout + res.stderr


def test_a_source_of_the_wrong_size_is_refused(tmp_path):
    root, reg = published(tmp_path)
    make_bundle_virtual(root, "team/demo", 1)
    target = root / "models/team/demo/v1/payload/art/sub/deep/a.txt"
    os.chmod(target, 0o644)
    with open(target, "ab") as fh:
        fh.write(b"more")
    stream = version_stream(reg.store, "team/demo", 1)
    with pytest.raises(IntegrityError, match="size differs"):
        stream_digest(stream)


def test_a_level_1_bundle_keeps_its_file(tmp_path, cli):
    root, reg = published(tmp_path, bundle="{compression: 1}")
    facts = bundle_facts(root, "team/demo", 1)
    assert facts["compression"] == "gzip-1"
    real = root / "models/team/demo/v1/bundle.tar.gz"
    assert hashlib.sha256(real.read_bytes()).hexdigest() == facts["sha256"]
    assert version_stream(reg.store, "team/demo", 1) is None
    assert cli("verify", root_dir=root).exit_code == 0


def test_dist_rebuild_bundles_writes_real_files_that_verify_checks(tmp_path, regctl_proc):
    root, reg = published(tmp_path)
    entry = make_bundle_virtual(root, "team/demo", 1)
    reg.promote("team/demo", version=1, to="release", reason="test")
    served = sorted(root.glob("dist/*/team/demo/versions/v1"))
    assert served and not any((d / "bundle.tar.gz").exists() for d in served)
    res = regctl_proc("dist", "rebuild", "--bundles", "--json")
    assert res.returncode == 0, res.stderr
    written = json.loads(res.stdout)["bundles"]
    assert len(written) == len(served)
    for d in served:
        data = (d / "bundle.tar.gz").read_bytes()
        assert sha256_of(data) == entry["sha256"]
    # a plain dist rebuild keeps them, and verify accepts them
    assert regctl_proc("dist", "rebuild").returncode == 0
    assert all((d / "bundle.tar.gz").exists() for d in served)
    again = regctl_proc("dist", "rebuild", "--bundles", "--json")
    assert json.loads(again.stdout)["bundles"] == []  # nothing left to write
    ok = regctl_proc("verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # drift: a written-out bundle with other bytes of the same size is reported
    target = served[0] / "bundle.tar.gz"
    data = bytearray(target.read_bytes())
    data[20] ^= 1
    target.unlink()
    target.write_bytes(bytes(data))
    bad = regctl_proc("verify")
    assert bad.returncode != 0
    assert "written-out bundle differs" in bad.stdout + bad.stderr


def test_verify_finds_drift_around_a_bundle_that_is_not_stored(tmp_path, cli):
    root, _reg = published(tmp_path)
    make_bundle_virtual(root, "team/demo", 1)
    assert cli("verify", root_dir=root).exit_code == 0
    # the served copy of the manifest differs: the assembled bundle would differ too
    served = root / "dist/dev/team/demo/versions/v1/manifest.json"
    data = served.read_bytes()
    served.unlink()
    served.write_bytes(data.replace(b'"team/demo"', b'"team/dem0"'))
    res = cli("verify", root_dir=root)
    assert res.exit_code != 0 and "manifest.json" in res.stdout + res.stderr
    served.unlink()
    served.write_bytes(data)
    # a recorded mtime that no longer gives the recorded bytes
    yaml_path = root / "models/team/demo/v1/version.yaml"
    doc = yaml.safe_load(yaml_path.read_text())
    doc["bundle"]["mtime"] += 1
    os.chmod(yaml_path, 0o644)
    yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = cli("verify", root_dir=root)
    assert res.exit_code == 5
    assert "bundle.tar.gz" in res.stdout + res.stderr


def test_publish_can_hash_the_bundle_without_writing_it(tmp_path):
    from registry_cli.storage.payload import PlannedFile
    from registry_cli.storage.payload_copy import write_payload_and_bundle

    src = artifact(tmp_path)
    planned = [
        PlannedFile(p, str(p.relative_to(src.parent)), p.stat().st_size)
        for p in sorted(src.rglob("*"))
        if p.is_file()
    ]

    def manifest(records):
        return json.dumps({"files": [r.to_doc() for r in records]}).encode()

    results = []
    for name, write in (("a", True), ("b", False)):
        vdir = tmp_path / name
        records, bundle, _copies = write_payload_and_bundle(
            planned, vdir, manifest, mtime=1_700_000_123, store_bundle=write
        )
        assert (vdir / "bundle.tar.gz").exists() == write
        results.append((records, bundle))
    assert results[0] == results[1]
    real = (tmp_path / "a" / "bundle.tar.gz").read_bytes()
    assert (len(real), sha256_of(real)) == results[0][1]
    # and the bundle assembled from b's payload is a's file
    layout = BundleLayout.from_manifest(
        (tmp_path / "b" / "manifest.json").read_bytes(), 1_700_000_123
    )
    assert BundleStream(layout, FolderSource(tmp_path / "b")).read(0, layout.size) == real
