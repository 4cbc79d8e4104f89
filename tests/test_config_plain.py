"""registry.yaml as `regctl init` writes it is read without the YAML parser: the fast
path must read exactly what YAML reads, and leave every other document to YAML."""

from __future__ import annotations

import pytest
import yaml

from registry_cli.core import config as config_module
from registry_cli.core.config import INIT_CONFIG, load_config_file, plain_config
from registry_cli.errors import ConfigError

PLAIN = [
    INIT_CONFIG,
    "",
    "\n",
    "# only a comment\n",
    "format_version: 1",
    "format_version: 1\n",
    "format_version:   1   # the format\n\n   \n",
    "   # indented comment\nformat_version: 1\n# after\n",
    "# a: [1, 2]\n#   - b\nformat_version: 1\n",
]

NOT_PLAIN = [
    "format_version: 2\n",
    "format_version: 01\n",
    "format_version: 1.0\n",
    "format_version: '1'\n",
    "format_version: 1#x\n",
    "format_version: 1\nformat_version: 1\n",
    " format_version: 1\n",
    "format_version:1\n",
    "format_version: 1\r\n",
    "\tformat_version: 1\n",
    "format_version: 1\t\n",
    "\ufeffformat_version: 1\n",
    "# caf\u00e9\nformat_version: 1\n",
    "---\nformat_version: 1\n",
    "format_version: 1\n...\n",
    "format_version: 1\nstages: [dev, release]\n",
    "stages: [a, b]\n",
    "root: elsewhere\n",
    "[1, 2]\n",
    "format_version: 1\n\x07\n",
]


@pytest.mark.parametrize("text", PLAIN)
def test_the_fast_path_reads_what_yaml_reads(text):
    assert plain_config(text) == (yaml.safe_load(text) or {})


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_any_other_document_goes_to_yaml(text):
    assert plain_config(text) is None


def test_an_init_config_loads_without_yaml_and_the_same_as_through_it(tmp_path, monkeypatch):
    path = tmp_path / "registry.yaml"
    path.write_text(INIT_CONFIG)
    fast = load_config_file(path)
    calls = []
    real = config_module._parse_yaml
    monkeypatch.setattr(config_module, "_parse_yaml", lambda *a: calls.append(a) or real(*a))
    assert load_config_file(path) == fast and calls == []
    monkeypatch.setattr(config_module, "plain_config", lambda text: None)
    assert load_config_file(path) == fast and len(calls) == 1  # what YAML makes of it


def test_other_documents_still_go_through_yaml(tmp_path, monkeypatch):
    calls = []
    real = config_module._parse_yaml
    monkeypatch.setattr(config_module, "_parse_yaml", lambda *a: calls.append(a) or real(*a))
    path = tmp_path / "registry.yaml"
    path.write_text("format_version: 1\nstages: [a, b]\n")
    assert load_config_file(path).stages == ("a", "b") and len(calls) == 1
    path.write_text("format_version: 2\n")
    with pytest.raises(ConfigError, match=r"registry.yaml:1: unsupported format_version 2"):
        load_config_file(path)
    path.write_text("# ok\nformat_version: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config_file(path)


def test_the_prehash_runs_only_for_a_folder_root_with_level0_bundles(tmp_path):
    from registry_cli.core.config import level0_folder_root

    root = tmp_path / "r"
    root.mkdir()
    (root / "registry.yaml").write_text(INIT_CONFIG)
    assert level0_folder_root(str(root), None) == root.absolute()
    (root / "registry.yaml").write_text("bundle: {compression: fast}\n")
    assert level0_folder_root(str(root), None) is None
    (root / "registry.yaml").write_text("remote: http://127.0.0.1:9/\n")
    assert level0_folder_root(str(root), None) is None
    assert level0_folder_root("s3://bucket/prefix", None) is None
