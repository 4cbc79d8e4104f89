"""The CNCF model spec's layer media types, and which one a payload file gets by its
name (see docs/oci.md#the-mapping): weights, their configuration files, docs, code
and datasets; anything unrecognised is a weight."""

from __future__ import annotations

WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.raw"
DOC = "application/vnd.cncf.model.doc.v1.raw"
CODE = "application/vnd.cncf.model.code.v1.raw"
DATASET = "application/vnd.cncf.model.dataset.v1.raw"
LAYER_MEDIA_TYPES = (WEIGHT, WEIGHT_CONFIG, DOC, CODE, DATASET)

_WEIGHT_SUFFIXES = (
    ".pt", ".pth", ".pt2", ".ts", ".safetensors", ".onnx", ".bin", ".ckpt", ".h5",
    ".keras", ".pb", ".tflite", ".gguf", ".ggml", ".pkl", ".joblib", ".npz", ".npy",
    ".engine", ".plan", ".mlmodel", ".params", ".msgpack",
)  # fmt: skip
_CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".model")
_CONFIG_NAMES = ("MLmodel",)
_DOC_SUFFIXES = (".md", ".rst", ".txt", ".pdf", ".html", ".htm")
_DOC_STEMS = ("readme", "license", "licence", "notice", "copying", "model_card", "modelcard")
_CODE_SUFFIXES = (
    ".py", ".ipynb", ".sh", ".js", ".c", ".cc", ".cpp", ".h", ".go", ".rs", ".java", ".r",
    ".jl", ".lua",
)  # fmt: skip
_CODE_NAMES = ("requirements.txt", "Dockerfile", "Makefile", "python_env.yaml", "conda.yaml")
_DATASET_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".arrow", ".tfrecord", ".avro")
_DATASET_DIRS = ("data", "dataset", "datasets")


def media_type_of(path: str) -> str:
    """The CNCF layer media type of a payload path (``payload/`` stripped or not)."""
    rel = path[len("payload/") :] if path.startswith("payload/") else path
    base = rel.rsplit("/", 1)[-1]
    lower = base.lower()
    stem = lower.rsplit(".", 1)[0]
    dirs = [d.lower() for d in rel.split("/")[:-1]]
    if base in _CODE_NAMES or lower.endswith(_CODE_SUFFIXES):
        return CODE
    if lower.endswith(_WEIGHT_SUFFIXES):
        return WEIGHT
    if lower.endswith(_DATASET_SUFFIXES) or any(d in _DATASET_DIRS for d in dirs):
        return DATASET
    if stem in _DOC_STEMS or lower.endswith(_DOC_SUFFIXES):
        return DOC
    if base in _CONFIG_NAMES or lower.endswith(_CONFIG_SUFFIXES):
        return WEIGHT_CONFIG
    return WEIGHT
