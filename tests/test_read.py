"""Reading: references, list/versions/show/resolve in human and JSON form, missing things."""

from __future__ import annotations

import json

import pytest

from registry_cli import BadInput, NotFound


@pytest.fixture
def three(reg, model_file):
    for acc in (0.8, 0.95, 0.9):
        reg.publish("m", [model_file], metrics={"accuracy": acc, "loss": 1 - acc})
    return reg


@pytest.mark.parametrize(
    "ref,expected",
    [
        ("m", "v3"),
        ("m:latest", "v3"),
        ("m:v2", "v2"),
        ("m:2", "v2"),
        ("m:v0002", "v2"),
        ("m:0002", "v2"),
        ("m@candidate", "v3"),
    ],
)
def test_resolve_references(three, cli, ref, expected):
    res = cli("resolve", ref)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == f"{expected}\n"


def test_best_uses_metric_and_mode(three, cli, root):
    assert cli("resolve", "m:best", "--metric", "accuracy").stdout == "v2\n"
    assert cli("resolve", "m:best", "--metric", "accuracy", "--mode", "min").stdout == "v1\n"
    assert cli("resolve", "m:best", "--metric", "loss", "--mode", "min").stdout == "v2\n"
    res = cli("resolve", "m:best")
    assert res.exit_code == 2 and "--metric" in res.stderr
    (root / "registry.yaml").write_text("best: {metric: loss, mode: min}\n")
    assert cli("resolve", "m:best").stdout == "v2\n"
    res = cli("resolve", "m:best", "--metric", "f1")
    assert res.exit_code == 3


def test_archived_versions_are_never_latest_or_best(three, cli):
    three.promote("m", version="v1")
    three.archive("m", "v3")
    three.archive("m", "v2")
    assert cli("resolve", "m").stdout == "v1\n"
    assert cli("resolve", "m:best", "--metric", "accuracy").stdout == "v1\n"
    assert cli("resolve", "m:v3").stdout == "v3\n"  # still addressable by number


def test_stage_latest(three, cli):
    res = cli("resolve", "m:latest", "--stage", "release")
    assert res.exit_code == 3 and "no LATEST" in res.stderr
    three.promote("m", version="v2")
    assert cli("resolve", "m", "--stage", "release").stdout == "v2\n"
    assert cli("resolve", "m", "--stage", "dev").stdout == "v3\n"
    assert cli("resolve", "m", "--stage", "prod").exit_code == 2


@pytest.mark.folder_only("compares with the folder path (tests/test_s3.py covers s3)")
def test_resolve_path_prints_preferred_weight(three, cli, root):
    res = cli("resolve", "m:v1", "--path")
    assert res.stdout.strip() == str(root / "models" / "m" / "v1" / "payload" / "model.pt")


@pytest.mark.parametrize(
    "ref,code",
    [
        ("nosuch", 3),
        ("m:v9", 3),
        ("m@champion", 3),
        ("m@bad alias", 2),
        ("m:vx", 2),
        ("m:v0", 2),
        ("bad name", 2),
    ],
)
def test_resolve_errors(three, cli, ref, code):
    res = cli("resolve", ref)
    assert res.exit_code == code, res.stderr
    assert res.stderr.startswith("error: ") and res.stdout == ""


def test_missing_root_is_exit_3_naming_the_path(cli, root):
    for args in (["list"], ["show", "m"], ["versions", "m"], ["audit"], ["verify"]):
        res = cli(*args)
        assert res.exit_code == 3, args
        assert str(root) in res.stderr
    assert not root.exists()


@pytest.mark.folder_only("compares path with the folder path (tests/test_s3.py covers s3)")
def test_show_json_has_the_spec_keys(three, cli, root):
    doc = json.loads(cli("show", "m:v2", "--json").stdout)
    assert doc["name"] == "m" and doc["version"] == "v2"
    assert doc["status"] == "active" and doc["stages"] == ["dev"] and doc["aliases"] == []
    assert doc["metrics"] == {"accuracy": 0.95, "loss": pytest.approx(0.05)}
    assert doc["path"] == str(root / "models" / "m" / "v2")
    assert doc["preferred_weight"] == "payload/model.pt"
    assert doc["bundle"]["path"] is None and doc["bundle"]["stored"] is False  # no file
    assert len(doc["bundle"]["sha256"]) == 64
    assert doc["files"][0]["path"] == "payload/model.pt"


def test_list_and_versions_json(three, cli):
    three.promote("m", version="v2")
    listing = json.loads(cli("list", "--json").stdout)
    assert listing == [
        {
            "name": "m",
            "versions": 3,
            "latest": "v3",
            "aliases": {"candidate": "v3", "champion": "v2"},
            "stages": {"dev": "v3", "release": "v2"},
        }
    ]
    doc = json.loads(cli("versions", "m", "--json").stdout)
    assert doc["name"] == "m"
    assert [v["version"] for v in doc["versions"]] == ["v1", "v2", "v3"]
    v2 = doc["versions"][1]
    assert v2["aliases"] == ["champion"] and v2["stages"] == ["dev", "release"]
    assert set(v2) >= {"version", "status", "stages", "aliases", "tags", "metrics", "created_at"}
    rel = json.loads(cli("versions", "m", "--stage", "release", "--json").stdout)
    assert [v["version"] for v in rel["versions"]] == ["v2"]


def test_empty_list_prints_empty_json_list(cli, reg):
    reg.init()
    assert cli("list", "--json").stdout == "[]\n"
    assert "no models" in cli("list").stdout


def test_human_output_shows_aliases_stages_status(three, cli):
    three.promote("m", version="v2")
    three.archive("m", "v1")
    out = cli("versions", "m").stdout
    assert "@champion" in out and "@candidate" in out and "archived" in out and "release" in out
    out = cli("list").stdout
    assert "@champion=v2" in out and "@candidate=v3" in out
    out = cli("show", "m@champion").stdout
    assert "m:v2" in out and "@champion" in out and "release" in out


def test_library_get_raises_typed_errors(three):
    with pytest.raises(NotFound):
        three.get("m:v42")
    with pytest.raises(LookupError):  # builtin parent
        three.get("other")
    with pytest.raises(BadInput):
        three.get("m:vv")
    with pytest.raises(ValueError):
        three.get("")


@pytest.mark.folder_only("reads manifest.json through the local folder")
def test_show_reports_current_tags_and_manifest_keeps_publish_tags(reg, model_file, cli):
    info = reg.publish("m", [model_file], tags={"dataset": "d1", "draft": "yes"})
    reg.tag("m", "v1", {"reviewed": "yes"}, remove=["draft"])
    doc = json.loads(cli("show", "m:v1", "--json").stdout)
    assert doc["tags"] == {"dataset": "d1", "reviewed": "yes"}
    assert json.loads((info.path / "manifest.json").read_text())["tags"] == {
        "dataset": "d1",
        "draft": "yes",
    }
