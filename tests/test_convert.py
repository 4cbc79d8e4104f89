"""publish --convert torch-standard: checkpoints in, a safe standard file (and a program) out.

Tiny models are built here; a user's own architecture lives in a module the
test writes into the working directory, which the CLI imports like ``python -m``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys

import pytest
import torch

from registry_cli.formats.publish_sources import (
    ConversionOptions,
    publish_with_conversion,
)

USER_MODULE = '''
import torch


class Net(torch.nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class Branchy(Net):
    """Data-dependent control flow: torch.export refuses it, tracing copes."""

    def forward(self, x):
        if x.sum() > 0:
            x = x * 2
        return super().forward(x)


class OneAtATime(torch.nn.Module):
    """Takes exactly one example: torch.export cannot make its batch dynamic."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, num_classes)

    def forward(self, x):
        return self.fc(x.reshape(1, -1))


def not_a_model(num_classes=3):
    return "nope"
'''


def make_net(num_classes=3, cls="Net"):
    """The same architecture as the user's module, built here to make checkpoints."""
    torch.manual_seed(0)
    ns: dict = {}
    exec(USER_MODULE, ns)
    return ns[cls](num_classes)


@pytest.fixture
def user_module(monkeypatch):
    """The user's package ``userpkg/models.py`` in the current directory (the CLI's cwd),
    imported by ``--arch userpkg.models:...``; forgotten after the test."""
    os.makedirs("userpkg")
    open("userpkg/__init__.py", "w").close()
    with open("userpkg/models.py", "w") as fh:
        fh.write(USER_MODULE)
    for mod in ("userpkg", "userpkg.models"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    yield "userpkg.models"
    for mod in ("userpkg", "userpkg.models"):
        sys.modules.pop(mod, None)


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def payload_of(root, name="m", version="v1"):
    return root / "models" / name / version / "payload"


def assert_nothing_published(root, name="m"):
    assert not (root / "models" / name / "v1").exists()
    tmp = root / ".regctl" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def assert_nothing_written(root):
    """A refused conversion fails before it creates anything, the registry root included."""
    assert not root.exists()


@pytest.fixture
def training_checkpoint(tmp_path):
    """What training scripts leave: epoch, model and optimizer state, DataParallel keys."""
    net = make_net(5)
    wrapped = torch.nn.DataParallel(net)
    opt = torch.optim.SGD(wrapped.parameters(), lr=0.1, momentum=0.9)
    wrapped(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    path = tmp_path / "best_checkpoint.pth"
    torch.save(
        {
            "epoch": 7,
            "model_state_dict": wrapped.state_dict(),
            "optimizer_state_dict": opt.state_dict(),
        },
        path,
    )
    return path, net


def test_training_checkpoint_becomes_standard_file(cli, root, training_checkpoint):
    path, net = training_checkpoint
    original_sha = sha256(path)
    res = cli(
        "publish",
        "m",
        str(path),
        "--convert",
        "torch-standard",
        "--task",
        "classification",
        "--num-classes",
        "5",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["standard_artifacts"] == {"pytorch": "payload/model-standard.pt"}
    assert info["preferred_weight"] == "payload/model-standard.pt"
    files = {f["path"]: f["sha256"] for f in info["files"]}
    assert files["payload/best_checkpoint.pth"] == original_sha  # kept, unchanged
    assert sha256(path) == original_sha

    doc = torch.load(payload_of(root) / "model-standard.pt", weights_only=True)
    assert set(doc) == {
        "format",
        "format_version",
        "state_dict",
        "task",
        "num_classes",
        "arch",
        "source",
        "torch_version",
    }
    assert doc["format"] == "regctl.torch-standard" and doc["format_version"] == 1
    assert doc["task"] == "classification" and doc["num_classes"] == 5 and doc["arch"] is None
    assert doc["source"] == {"file": "best_checkpoint.pth", "sha256": original_sha}
    assert doc["torch_version"] == torch.__version__
    expected = net.state_dict()
    assert list(doc["state_dict"]) == list(expected)  # 'module.' stripped
    for key, value in expected.items():
        assert torch.equal(doc["state_dict"][key], value)
    assert_nothing_published(root, "other")  # no leftovers in .regctl/tmp


@pytest.mark.parametrize(
    "shape", ["bare", "state_dict", "model_state_dict", "model", "bare-dataparallel", "compiled"]
)
def test_checkpoint_shapes_are_understood(reg, tmp_path, shape):
    net = make_net()
    sd = net.state_dict()
    obj = {
        "bare": sd,
        "state_dict": {"state_dict": sd, "epoch": 1},
        "model_state_dict": {"model_state_dict": sd, "optimizer_state_dict": {}},
        "model": {"model": sd, "num_classes": 3},
        "bare-dataparallel": {f"module.{k}": v for k, v in sd.items()},
        "compiled": {f"_orig_mod.{k}": v for k, v in sd.items()},
    }[shape]
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    info = publish_with_conversion(reg, "m", [path])
    doc = torch.load(info.path / "payload" / "model-standard.pt", weights_only=True)
    assert list(doc["state_dict"]) == list(sd)
    if shape == "model":
        assert doc["num_classes"] == 3  # taken from the checkpoint when not given


def test_arch_writes_a_program_that_runs_without_user_code(
    cli, root, training_checkpoint, user_module
):
    path, net = training_checkpoint
    res = cli(
        "publish",
        "m",
        str(path),
        "--convert",
        "torch-standard",
        "--num-classes",
        "5",
        "--arch",
        f"{user_module}:Net",
        "--example-shape",
        "1,3,8,8",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["standard_artifacts"] == {
        "pytorch": "payload/model-standard.pt",
        "exported_program": "payload/model.pt2",
    }
    assert info["signature"] == {
        "inputs": [{"shape": [None, 3, 8, 8], "dtype": "float32"}],
        "batch_dim": 0,
    }
    doc = torch.load(payload_of(root) / "model-standard.pt", weights_only=True)
    assert doc["arch"] == "userpkg.models:Net" and doc["num_classes"] == 5

    sys.modules.pop(user_module, None)
    sys.modules.pop("userpkg", None)
    shutil.rmtree("userpkg")  # the program must not need the user's code
    program = torch.export.load(str(payload_of(root) / "model.pt2")).module()
    x = torch.randn(3, 3, 8, 8)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(program(x), net(x), atol=1e-5)
    assert user_module not in sys.modules


def test_export_failure_falls_back_to_torchscript(cli, root, tmp_path, user_module):
    path = tmp_path / "branchy.pt"
    torch.save(make_net().state_dict(), path)
    res = cli(
        "publish",
        "m",
        str(path),
        "--convert",
        "torch-standard",
        "--arch",
        f"{user_module}:Branchy",
        "--example-shape",
        "1,3,8,8",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["standard_artifacts"]["torchscript"] == "payload/model-torchscript.pt"
    assert "exported_program" not in info["standard_artifacts"]
    scripted = torch.jit.load(str(payload_of(root) / "model-torchscript.pt"))
    assert scripted(torch.randn(4, 3, 8, 8)).shape == (4, 3)


def test_static_program_records_its_fixed_batch(cli, root, tmp_path, user_module):
    path = tmp_path / "one.pt"
    torch.save(make_net(cls="OneAtATime").state_dict(), path)
    res = cli(
        "publish",
        "m",
        str(path),
        "--convert",
        "torch-standard",
        "--arch",
        f"{user_module}:OneAtATime",
        "--example-shape",
        "1,3,8,8",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["standard_artifacts"]["exported_program"] == "payload/model.pt2"
    assert info["signature"]["inputs"] == [{"shape": [1, 3, 8, 8], "dtype": "float32"}]
    program = torch.export.load(str(payload_of(root) / "model.pt2")).module()
    assert program(torch.randn(1, 3, 8, 8)).shape == (1, 3)


def test_strict_load_mismatch_names_the_keys(cli, root, tmp_path, user_module):
    sd = make_net().state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["fc.bias"]
    path = tmp_path / "ckpt.pth"
    torch.save(sd, path)
    res = cli(
        "publish", "m", str(path), "--convert", "torch-standard", "--arch", f"{user_module}:Net"
    )
    assert res.exit_code == 2
    assert "missing keys: fc.bias" in res.stderr
    assert "unexpected keys: extra.weight" in res.stderr
    assert "Traceback" not in res.stderr
    assert_nothing_written(root)


def test_wrong_num_classes_is_a_shape_mismatch(cli, root, training_checkpoint, user_module):
    path, _net = training_checkpoint  # trained with 5 classes
    res = cli(
        "publish",
        "m",
        str(path),
        "--convert",
        "torch-standard",
        "--num-classes",
        "7",
        "--arch",
        f"{user_module}:Net",
    )
    assert res.exit_code == 2
    assert "shape mismatches" in res.stderr and "fc.weight" in res.stderr
    assert_nothing_written(root)


@pytest.mark.parametrize(
    "arch, message",
    [
        ("no_such_module_xyz:Net", "cannot import module 'no_such_module_xyz'"),
        ("userpkg.models:Missing", "has no 'Missing'"),
        ("userpkg.models:not_a_model", "not a torch.nn.Module"),
        ("userpkg.models", "invalid --arch"),
    ],
)
def test_bad_arch_is_exit_2(cli, root, training_checkpoint, user_module, arch, message):
    path, _net = training_checkpoint
    res = cli("publish", "m", str(path), "--convert", "torch-standard", "--arch", arch)
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr
    assert_nothing_written(root)


@pytest.mark.parametrize("content", [b"", b"definitely not a checkpoint" * 10, "truncated"])
def test_corrupt_checkpoint_is_exit_2(cli, root, tmp_path, content):
    path = tmp_path / "broken.pth"
    if content == "truncated":
        good = tmp_path / "good.pth"
        torch.save(make_net().state_dict(), good)
        content = good.read_bytes()[:200]
    path.write_bytes(content)
    res = cli("publish", "m", str(path), "--convert", "torch-standard")
    assert res.exit_code == 2
    assert "is not a readable PyTorch checkpoint" in res.stderr
    assert "--trust-pickle" not in res.stderr
    assert_nothing_written(root)


class Payload:
    """Unpickling this creates a marker file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_reduce_payload_never_runs(cli, root, tmp_path, writer):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    obj = {"state_dict": make_net().state_dict(), "x": Payload(marker)}
    if writer == "torch.save":
        torch.save(obj, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=4)
    res = cli("publish", "m", str(path), "--convert", "torch-standard")
    assert res.exit_code == 2
    assert "--trust-pickle" in res.stderr
    if writer == "torch.save":
        assert "mkdir" in res.stderr  # names the global it refused
    assert not marker.exists()
    assert_nothing_written(root)


def test_pickled_module_needs_trust_pickle(cli, root, tmp_path, user_module, monkeypatch):
    import importlib

    with monkeypatch.context() as m:
        m.syspath_prepend(os.getcwd())
        mod = importlib.import_module(user_module)
    torch.manual_seed(1)
    model = mod.Net(4)
    path = tmp_path / "whole_model.pt"
    torch.save(model, path)
    res = cli("publish", "m", str(path), "--convert", "torch-standard")
    assert res.exit_code == 2
    assert "needs full unpickling" in res.stderr and "userpkg.models.Net" in res.stderr
    assert "--trust-pickle" in res.stderr
    assert_nothing_written(root)

    sys.modules.pop(user_module)  # the trusted load imports it from the cwd, like python -m
    sys.modules.pop("userpkg")
    res = cli("publish", "m", str(path), "--convert", "torch-standard", "--trust-pickle", "--json")
    assert res.exit_code == 0, res.stderr
    doc = torch.load(payload_of(root) / "model-standard.pt", weights_only=True)
    assert torch.equal(doc["state_dict"]["fc.weight"], model.state_dict()["fc.weight"])


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--task", "classification"], 2, "need --convert"),
        (["--convert", "onnx"], 2, "unknown --convert target"),
        (["--convert", "torch-standard", "--num-classes", "0"], 2, "--num-classes"),
        (["--convert", "torch-standard", "--task", "Bad Task"], 2, "invalid --task"),
    ],
)
def test_bad_flags(cli, root, tmp_path, args, code, message):
    path = tmp_path / "c.pt"
    torch.save(make_net().state_dict(), path)
    res = cli("publish", "m", str(path), *args)
    assert res.exit_code == code, res.stderr
    assert message in res.stderr
    assert_nothing_written(root)


def test_needs_exactly_one_checkpoint(cli, root, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    res = cli("publish", "m", str(notes), "--convert", "torch-standard")
    assert res.exit_code == 2 and "needs a .pt, .pth or .ckpt" in res.stderr
    folder = tmp_path / "run"
    folder.mkdir()
    for n in ("a.pt", "b.pth"):
        torch.save(make_net().state_dict(), folder / n)
    res = cli("publish", "m", str(folder), "--convert", "torch-standard")
    assert res.exit_code == 2 and "found 2 checkpoints" in res.stderr
    res = cli("publish", "m", str(tmp_path / "missing.pth"), "--convert", "torch-standard")
    assert res.exit_code == 3
    assert_nothing_written(root)


def test_checkpoint_inside_a_folder_is_converted(reg, tmp_path):
    folder = tmp_path / "run42"
    (folder / "weights").mkdir(parents=True)
    torch.save({"model_state_dict": make_net().state_dict()}, folder / "weights" / "best.pth")
    (folder / "config.json").write_text("{}")
    info = publish_with_conversion(reg, "m", [folder], options=ConversionOptions(task="regression"))
    paths = {f["path"] for f in info.files}
    assert {
        "payload/run42/weights/best.pth",
        "payload/run42/config.json",
        "payload/model-standard.pt",
    } <= paths
    doc = torch.load(info.path / "payload" / "model-standard.pt", weights_only=True)
    assert doc["task"] == "regression" and doc["source"]["file"] == "best.pth"
    assert reg.verify("m").ok


def test_legacy_non_zip_checkpoint_is_converted(reg, tmp_path):
    """Files saved before torch 1.6's zip format cannot be memory-mapped; they still load."""
    net = make_net()
    path = tmp_path / "old.pth"
    torch.save({"state_dict": net.state_dict()}, path, _use_new_zipfile_serialization=False)
    info = publish_with_conversion(reg, "m", [path])
    doc = torch.load(info.path / "payload" / "model-standard.pt", weights_only=True)
    assert torch.equal(doc["state_dict"]["fc.weight"], net.state_dict()["fc.weight"])


def test_gc_keeps_a_live_conversion_folder_and_removes_a_dead_one(reg, model_file):
    reg.publish("m", [model_file])  # a root with a model
    with reg.scratch("convert") as live:  # where publish_with_conversion works
        (live / "model-standard.pt").write_bytes(b"half written")
        report = reg.gc()
        assert str(live) in report.kept_in_use and live.exists()
    dead = reg.layout.tmp / "convert-99999-deadbeef"  # what a killed converter leaves
    dead.mkdir()
    (dead / ".alive").touch()
    assert str(dead) in reg.gc().removed and not dead.exists()
