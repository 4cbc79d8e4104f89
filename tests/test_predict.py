"""`regctl predict`: real torch.export / TorchScript / MLflow pyfunc models, good and
bad inputs, nothing runnable, and a pulled-bundle folder."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from registry_cli.core.publishing import Produced
from tests import _predict_models as pm
from tests.cas_helpers import bundle_bytes

SIG = {"inputs": [{"shape": [None, pm.T, pm.F], "dtype": "float32"}], "batch_dim": 0}


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    """Each real model is built once per module (exporting and saving take seconds)."""
    return pm.save_exported(tmp_path_factory.mktemp("pt2") / "model.pt2")


@pytest.fixture(scope="module")
def torchscript(tmp_path_factory):
    return pm.save_torchscript(tmp_path_factory.mktemp("ts") / "model.pt")


@pytest.fixture(scope="module")
def mlflow_model(tmp_path_factory):
    return pm.save_mlflow_seq(tmp_path_factory.mktemp("mlflow") / "seq_model")


def write_json(path, doc):
    path.write_text(json.dumps(doc))
    return path


def run_predict(cli, ref, path):
    res = cli("predict", ref, "--input", str(path))
    return res, (json.loads(res.stdout) if res.exit_code == 0 else None)


def test_exported_program_single_example_batch_and_bare_array(reg, cli, tmp_path, pt2):
    reg.publish("tiny", [pt2], signature=SIG)
    x = pm.example(1)
    res, out = run_predict(cli, "tiny", write_json(tmp_path / "one.json", {"X": x.tolist()}))
    assert res.exit_code == 0, res.stderr
    assert out["model"] == "tiny" and out["version"] == "v1"
    # one example in, one (unbatched) answer out
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(x[None])[0], rtol=1e-5)

    xb = pm.example(2, batch=3)
    res, out = run_predict(cli, "tiny:v1", write_json(tmp_path / "bare.json", xb.tolist()))
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(xb), rtol=1e-5)


def test_npy_and_stdin_inputs(reg, cli, tmp_path, pt2):
    reg.publish("tiny", [pt2], signature=SIG)
    xb = pm.example(3, batch=2)
    npy = tmp_path / "x.npy"
    np.save(npy, xb)
    res, out = run_predict(cli, "tiny@candidate", npy)
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(xb), rtol=1e-5)

    res = cli("predict", "tiny", "--input", "-", input=json.dumps({"X": xb[0].tolist()}))
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(
        json.loads(res.stdout)["prediction"], pm.expected_torch(xb)[0], rtol=1e-5
    )


def test_signature_read_from_exported_program_when_manifest_has_none(reg, cli, tmp_path, pt2):
    reg.publish("tiny", [pt2])  # no --example-shape
    x = pm.example(4)
    res, out = run_predict(cli, "tiny", write_json(tmp_path / "x.json", {"X": x.tolist()}))
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(x[None])[0], rtol=1e-5)
    res, _ = run_predict(cli, "tiny", write_json(tmp_path / "bad.json", {"X": x[:, :5].tolist()}))
    assert res.exit_code == 2
    assert "expected [*, 12, 18]" in res.stderr and res.stdout == ""


def test_torchscript_found_by_content_not_name(reg, cli, tmp_path, torchscript):
    reg.publish("tiny-ts", [torchscript], signature=SIG)  # payload/model.pt
    xb = pm.example(5, batch=4)
    res, out = run_predict(cli, "tiny-ts", write_json(tmp_path / "x.json", {"X": xb.tolist()}))
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(xb), rtol=1e-5)


def test_standard_artifacts_contract_picks_the_program(reg, cli, tmp_path, pt2):
    """The converter's output: model-standard.pt (preferred weight) + model.pt2."""
    import torch

    std = tmp_path / "model-standard.pt"
    torch.save(
        {"format": "regctl.torch-standard", "state_dict": pm.torch_model().state_dict()}, std
    )
    info = reg.publish(
        "conv",
        [],
        produced=Produced(
            files=((std, "model-standard.pt"), (pt2, "model.pt2")),
            standard_artifacts={
                "pytorch": "payload/model-standard.pt",
                "exported_program": "payload/model.pt2",
            },
        ),
        signature=SIG,
    )
    assert info.preferred_weight == "payload/model-standard.pt"
    x = pm.example(6)
    res, out = run_predict(cli, "conv", write_json(tmp_path / "x.json", {"X": x.tolist()}))
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(x[None])[0], rtol=1e-5)


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({"X": [[0.0] * 18] * 11}, "X has shape [11, 18], expected [*, 12, 18]"),
        ({"X": [[[0.0] * 17] * 12]}, "X has shape [1, 12, 17]"),
        ({"X": [0.0] * 18}, "X has shape [18]"),
        ({"X": [["a"] * 18] * 12}, "expected numbers"),
        ({"X": [[0.0] * 18] * 11 + [[0.0] * 3]}, "ragged"),
        ({"Y": [[0.0] * 18] * 12}, "has no 'X'"),
        ({"X": 3}, "X must be an array"),
    ],
)
def test_bad_inputs_are_exit_2_naming_expected_and_got(reg, cli, tmp_path, pt2, doc, needle):
    reg.publish("tiny", [pt2], signature=SIG)
    res, _ = run_predict(cli, "tiny", write_json(tmp_path / "bad.json", doc))
    assert res.exit_code == 2
    assert res.stdout == ""
    assert needle in res.stderr
    assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr


def test_dtype_checked_against_signature(reg, cli, tmp_path, pt2):
    sig = {"inputs": [{"shape": [None, pm.T, pm.F], "dtype": "int64"}], "batch_dim": 0}
    reg.publish("ints", [pt2], signature=sig)
    npy = tmp_path / "x.npy"
    np.save(npy, pm.example(7))
    res, _ = run_predict(cli, "ints", npy)
    assert res.exit_code == 2
    assert "X has dtype float32, expected int64" in res.stderr


def test_not_json_nor_npy_and_missing_file(reg, cli, tmp_path, pt2):
    reg.publish("tiny", [pt2], signature=SIG)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01not json")
    res, _ = run_predict(cli, "tiny", junk)
    assert res.exit_code == 2 and "neither JSON nor .npy" in res.stderr
    res, _ = run_predict(cli, "tiny", tmp_path / "absent.json")
    assert res.exit_code == 3 and "does not exist" in res.stderr


def test_nothing_runnable_is_exit_4(reg, cli, tmp_path, model_file):
    reg.publish("weights-only", [model_file])
    res, _ = run_predict(cli, "weights-only", write_json(tmp_path / "x.json", {"X": [1.0]}))
    assert res.exit_code == 4
    assert "nothing runnable in weights-only:v1" in res.stderr
    assert "--convert torch-standard --arch" in res.stderr


def test_unknown_model_and_alias(reg, cli, tmp_path, pt2):
    reg.publish("tiny", [pt2], signature=SIG)
    x = write_json(tmp_path / "x.json", {"X": pm.example(0).tolist()})
    assert run_predict(cli, "nope", x)[0].exit_code == 3
    res, _ = run_predict(cli, "tiny@champion", x)
    assert res.exit_code == 3 and "no alias 'champion'" in res.stderr


def test_mlflow_pyfunc_checked_before_it_runs(reg, cli, tmp_path, mlflow_model, monkeypatch):
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("SEQ_MODEL_CALLS", str(calls))
    info = reg.publish("seq", [mlflow_model])  # signature comes from MLmodel
    assert any(f["path"].endswith("/MLmodel") for f in info.files)
    x = pm.example(8)
    res, out = run_predict(cli, "seq", write_json(tmp_path / "x.json", {"X": x.tolist()}))
    assert res.exit_code == 0, res.stderr
    assert out["prediction"] == pytest.approx(float(x.sum()), rel=1e-5)
    assert calls.read_text().count("call") == 1

    res, _ = run_predict(cli, "seq", write_json(tmp_path / "bad.json", {"X": x[:6].tolist()}))
    assert res.exit_code == 2 and "X has shape [6, 18], expected [*, 12, 18]" in res.stderr
    assert calls.read_text().count("call") == 1  # the model never saw the bad input


def test_pulled_bundle_folder_without_a_registry(reg, cli, tmp_path, pt2):
    info = reg.publish("tiny", [pt2], signature=SIG)
    bundle_dir = tmp_path / "cache" / "tiny" / "v1"
    bundle_dir.mkdir(parents=True)
    assert info.bundle["path"] is None  # assembled when read: no file of its own
    with tarfile.open(fileobj=io.BytesIO(bundle_bytes(info.path))) as tar:
        tar.extractall(bundle_dir, filter="data")
    assert (bundle_dir / "manifest.json").is_file() and (bundle_dir / "payload").is_dir()
    x = pm.example(9)
    res = cli(
        "predict",
        str(bundle_dir),
        "--input",
        "-",
        input=json.dumps({"X": x.tolist()}),
        root_dir=tmp_path / "no-registry-here",
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"] == "tiny" and out["version"] == "v1"
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(x[None])[0], rtol=1e-5)


def test_library_api_matches_cli(reg, pt2):
    from registry_cli.predict.service import load_reference, predict_bytes

    reg.publish("tiny", [pt2], signature=SIG)
    model = load_reference("tiny", lambda: reg)
    buf = io.BytesIO()
    np.save(buf, pm.example(10, batch=2))
    out = predict_bytes(model, buf.getvalue())
    assert out["version"] == "v1" and len(out["prediction"]) == 2


COLUMN_MODEL = """
import mlflow
import pandas as pd


class RowSum(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:
        return model_input[["a", "b", "c"]].sum(axis=1)


mlflow.models.set_model(RowSum())
"""


def test_mlflow_column_schema_checked_by_width_and_fed_as_dataframe(reg, cli, tmp_path):
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    code = tmp_path / "row_sum.py"
    code.write_text(COLUMN_MODEL)
    sig = ModelSignature(inputs=Schema([ColSpec("double", n) for n in ("a", "b", "c")]))
    folder = tmp_path / "src" / "row_sum"
    mlflow.pyfunc.save_model(str(folder), python_model=str(code), signature=sig)
    reg.publish("rows", [folder])

    from registry_cli.predict.loader import signature_from_mlmodel

    assert signature_from_mlmodel(folder) == {
        "inputs": [{"shape": [None, 3], "dtype": "float64", "columns": ["a", "b", "c"]}],
        "batch_dim": 0,
        "source": "MLmodel",
    }
    res, out = run_predict(cli, "rows", write_json(tmp_path / "x.json", [[1, 2, 3], [4, 5, 6]]))
    assert res.exit_code == 0, res.stderr
    assert out["prediction"] == [6.0, 15.0]
    res, out = run_predict(cli, "rows", write_json(tmp_path / "one.json", {"X": [1, 2, 3.5]}))
    assert res.exit_code == 0, res.stderr
    assert out["prediction"] == 6.5  # one row in, one value out
    res, _ = run_predict(cli, "rows", write_json(tmp_path / "bad.json", [[1, 2], [3, 4]]))
    assert res.exit_code == 2 and "X has shape [2, 2], expected [*, 3]" in res.stderr


def test_prepare_rules_for_batches_dtypes_and_static_batch_dims():
    """The input rules (docs/predictions.md#signatures), at the library level."""
    from registry_cli.errors import BadInput
    from registry_cli.predict.inputs import prepare

    p = prepare([[1, 2, 3]], {"inputs": [{"shape": [None, 3], "dtype": "float32"}]})
    assert p.array.dtype == np.float32 and p.array.shape == (1, 3) and not p.single
    p = prepare([1, 2, 3], {"inputs": [{"shape": [None, 3], "dtype": "float32"}]})
    assert p.single and p.array.shape == (1, 3)
    p = prepare(np.zeros((2, 3), dtype=np.float64), {"inputs": [{"shape": [None, 3]}]})
    assert p.array.dtype == np.float64  # no dtype in the signature: kept as given
    p = prepare([[True, False]], {"inputs": [{"shape": [None, 2], "dtype": "float32"}]})
    assert p.array.tolist() == [[1.0, 0.0]]
    with pytest.raises(BadInput, match=r"X has dtype float64, expected int64"):
        prepare([[1.5, 2.0]], {"inputs": [{"shape": [None, 2], "dtype": "int64"}]})
    # a static batch dimension: a single example is not batched automatically
    static = {"inputs": [{"shape": [1, 3], "dtype": "float32"}], "batch_dim": 0}
    assert prepare([[1, 2, 3]], static).array.shape == (1, 3)
    with pytest.raises(BadInput, match=r"X has shape \[3\], expected \[1, 3\] \(a batch\)$"):
        prepare([1, 2, 3], static)
    two = {"inputs": [{"shape": [None, 3]}, {"shape": [None, 2]}]}
    with pytest.raises(BadInput, match="takes 2 inputs"):
        prepare([[1, 2, 3]], two)
    p = prepare([[1, 2], [3, 4]], None)  # nothing to check against
    assert p.array.shape == (2, 2) and not p.single


def test_outputs_become_json():
    import pandas as pd
    import torch

    from registry_cli.predict.inputs import to_jsonable, unbatch

    assert to_jsonable(torch.tensor([[1.0, float("nan")]])) == [[1.0, None]]
    assert to_jsonable((np.float32(2.5), {"a": np.arange(2)})) == [2.5, {"a": [0, 1]}]
    frame = pd.DataFrame({"p": [0.1, 0.9]})
    assert to_jsonable(frame) == [{"p": 0.1}, {"p": 0.9}]
    assert unbatch(frame) == {"p": 0.1}
    assert to_jsonable(unbatch((torch.ones(2, 3), torch.zeros(2)))) == [[1.0] * 3, 0.0]


def test_predict_on_a_bundle_pulled_into_the_client_cache(reg, root, cli, tmp_path, pt2):
    """`regctl pull` from a registry root, then predict on the cached folder it prints."""
    reg.publish("tiny", [pt2], signature=SIG)
    reg.promote("tiny")
    cache = tmp_path / "client-cache"
    res = cli("pull", "tiny", "--from", str(root), "--cache-dir", str(cache), "--json")
    assert res.exit_code == 0, res.stderr
    pulled = json.loads(res.stdout)["path"]
    assert str(cache) in pulled
    x = pm.example(13)
    res = cli(
        "predict",
        pulled,
        "--input",
        "-",
        input=json.dumps({"X": x.tolist()}),
        root_dir=tmp_path / "no-registry-here",
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["model"], out["version"]) == ("tiny", "v1")
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(x[None])[0], rtol=1e-5)


# ------------------------------------------------- signatures of exported programs
def torch_input_specs(path) -> list[dict]:
    """What torch itself says the program's user inputs are (the reference to match)."""
    import torch

    program = torch.export.load(str(path))
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    out = []
    for name in program.graph_signature.user_inputs:
        val = nodes[name].meta["val"]
        shape = [d if isinstance(d, int) else None for d in val.shape]
        out.append({"shape": shape, "dtype": str(val.dtype).removeprefix("torch.")})
    return out


def test_publish_records_an_exported_programs_signature_without_torch(reg, cli, tmp_path, pt2):
    """An exported program's signature (docs/predictions.md): recorded as the program has it,
    read at publish from the archive."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from registry_cli.cli.main import app\n"
        f"app(['--root', {str(reg.root)!r}, 'publish', 'tiny', {str(pt2)!r}],"
        " standalone_mode=False)\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"  # publish never imported torch

    res = cli("show", "tiny", "--json")
    assert res.exit_code == 0, res.stderr
    signature = json.loads(res.stdout)["signature"]
    assert signature == {
        "inputs": [{"shape": [None, pm.T, pm.F], "dtype": "float32"}],
        "batch_dim": 0,
        "source": "exported_program",
    }
    assert signature["inputs"] == torch_input_specs(pt2)
    manifest = json.loads((reg.get("tiny").path / "manifest.json").read_text())
    assert manifest["signature"] == signature

    x = pm.example(6)
    res, out = run_predict(cli, "tiny", write_json(tmp_path / "one.json", {"X": x.tolist()}))
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(x[None])[0], rtol=1e-5)
    res, _ = run_predict(cli, "tiny", write_json(tmp_path / "bad.json", {"X": x[:, :7].tolist()}))
    assert res.exit_code == 2
    assert "X has shape [12, 7], expected [*, 12, 18] (a batch) or [12, 18]" in res.stderr


def test_a_static_program_keeps_its_fixed_batch(reg, cli, tmp_path):
    """A program exported without a dynamic batch takes exactly its shape: no auto-batching."""
    import torch

    path = tmp_path / "static" / "model.pt2"
    path.parent.mkdir()
    program = torch.export.export(pm.torch_model(), (torch.randn(1, pm.T, pm.F),))
    torch.export.save(program, str(path))
    res = cli("publish", "fixed", str(path), "--json")
    assert res.exit_code == 0, res.stderr
    signature = json.loads(res.stdout)["signature"]
    assert signature["inputs"] == [{"shape": [1, pm.T, pm.F], "dtype": "float32"}]
    assert signature["inputs"] == torch_input_specs(path)
    x = pm.example(7)
    res, _ = run_predict(cli, "fixed", write_json(tmp_path / "one.json", {"X": x.tolist()}))
    assert res.exit_code == 2
    assert "X has shape [12, 18], expected [1, 12, 18] (a batch)" in res.stderr
    res, out = run_predict(cli, "fixed", write_json(tmp_path / "b.json", {"X": [x.tolist()]}))
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(out["prediction"], pm.expected_torch(x[None]), rtol=1e-5)


def test_no_program_signature_when_another_runnable_or_a_junk_archive(
    reg, cli, tmp_path, pt2, torchscript
):
    folder = tmp_path / "both"
    folder.mkdir()
    (folder / "model.pt2").write_bytes(pt2.read_bytes())
    (folder / "model.pt").write_bytes(torchscript.read_bytes())
    res = cli("publish", "both", str(folder), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["signature"] is None  # which one runs is not the .pt2's call

    junk = tmp_path / "junk" / "model.pt2"
    junk.parent.mkdir()
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    res = cli("publish", "junk", str(junk), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["signature"] is None

    res = cli("publish", "given", str(pt2), "--example-shape", "1,12,18", "--json")
    assert json.loads(res.stdout)["signature"] == SIG  # --example-shape wins
