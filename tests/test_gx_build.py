"""``gx_project.build`` (scripts/build_gx_project.py): a rebuild keeps history and is reproducible.

Real builds through GX into tmp_path; the committed ``gx/`` is compared with a fresh build, so a
changed expectation or action without a rebuild (or a build that writes random ids) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from order_tracking.checks import gx_project

ROOT = Path(__file__).resolve().parent.parent


def _committed(gx_dir: Path) -> dict[str, bytes]:
    """Every file of a GX project except uncommitted/ (results, Data Docs), by relative path."""
    return {
        path.relative_to(gx_dir).as_posix(): path.read_bytes()
        for path in sorted(gx_dir.rglob("*"))
        if path.is_file() and path.relative_to(gx_dir).parts[0] != "uncommitted"
    }


def _ids(gx_dir: Path) -> dict[str, str]:
    """Every id GX wrote into the committed files, labelled by what it identifies."""
    ids: dict[str, str] = {}
    config = YAML(typ="safe").load((gx_dir / "great_expectations.yml").read_text(encoding="utf-8"))
    ids["data_context"] = str(config["data_context_id"])
    backend_id = (gx_dir / "expectations" / ".ge_store_backend_id").read_text(encoding="utf-8")
    ids["expectations_store_backend"] = backend_id.split("=", 1)[1].strip()
    for ds_name, ds in config["fluent_datasources"].items():
        ids[f"datasource {ds_name}"] = ds["id"]
        for asset_name, asset in ds["assets"].items():
            ids[f"asset {asset_name}"] = asset["id"]
            for bd_name, bd in asset["batch_definitions"].items():
                ids[f"batch_definition {bd_name}"] = bd["id"]
    for path in sorted((gx_dir / "expectations").glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        ids[f"suite {suite['name']}"] = suite["id"]
        for expectation in suite["expectations"]:
            ids[f"expectation {suite['name']} {expectation['type']}"] = expectation["id"]
    for path in sorted((gx_dir / "validation_definitions").glob("*.json")):
        vd = json.loads(path.read_text(encoding="utf-8"))
        ids[f"validation_definition {vd['name']}"] = vd["id"]
        # The references repeat the ids of what they point at: they must agree.
        for part in ("datasource", "asset", "batch_definition"):
            ref = vd["data"][part]
            assert ids[f"{part} {ref['name']}"] == ref["id"], (path.name, part)
        assert ids[f"suite {vd['suite']['name']}"] == vd["suite"]["id"], path.name
    for path in sorted((gx_dir / "checkpoints").glob("*.json")):
        checkpoint = json.loads(path.read_text(encoding="utf-8"))
        ids[f"checkpoint {checkpoint['name']}"] = checkpoint["id"]
        for ref in checkpoint["validation_definitions"]:
            assert ids[f"validation_definition {ref['name']}"] == ref["id"], path.name
    return ids


def _expected_ids() -> dict[str, str]:
    sid = gx_project.stable_id
    ds, asset, bd = gx_project.DATASOURCE, gx_project.ASSET, gx_project.BATCH_DEFINITION
    ids = {
        "data_context": sid("data_context"),
        "expectations_store_backend": sid("data_context"),  # GX: the context id is this one
        f"datasource {ds}": sid("datasource", ds),
        f"asset {asset}": sid("asset", ds, asset),
        f"batch_definition {bd}": sid("batch_definition", ds, asset, bd),
    }
    for check in gx_project.CHECKS.values():
        ids[f"suite {check.suite}"] = sid("suite", check.suite)
        ids[f"expectation {check.suite} {check.expectation_type}"] = sid(
            "expectation", check.suite, check.expectation_type
        )
        ids[f"validation_definition {check.suite}"] = sid("validation_definition", check.suite)
        ids[f"checkpoint {check.checkpoint}"] = sid("checkpoint", check.checkpoint)
    return ids


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh build (a project root holding gx/), shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("built")
    gx_project.build(root)
    return root / "gx"


def test_a_rebuild_writes_the_same_bytes(tmp_path: Path, built: Path, monkeypatch: pytest.MonkeyPatch):
    # The build test-connects to an in-memory SQLite, never to a warehouse named in the environment.
    monkeypatch.setenv(gx_project.URL_ENV, "postgresql://nobody:secret@127.0.0.1:1/unreachable")
    gx_project.build(tmp_path)
    first = _committed(tmp_path / "gx")
    assert first == _committed(built)
    gx_project.build(tmp_path)
    assert _committed(tmp_path / "gx") == first


def test_a_rebuild_keeps_uncommitted_results_and_data_docs(tmp_path: Path):
    gx_project.build(tmp_path)
    uncommitted = tmp_path / "gx" / "uncommitted"
    result = uncommitted / "validations" / "order_tracking_missing_spath" / "run" / "result.json"
    page = uncommitted / "data_docs" / "local_site" / "index.html"
    for path, text in ((result, '{"success": false}'), (page, "<html>history</html>")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    stale = tmp_path / "gx" / "checkpoints" / "order_tracking_removed_check.json"
    stale.write_text("{}", encoding="utf-8")

    gx_project.build(tmp_path)

    assert result.read_text(encoding="utf-8") == '{"success": false}'
    assert page.read_text(encoding="utf-8") == "<html>history</html>"
    assert not stale.exists()  # the committed part is regenerated, not merged


def test_every_id_is_derived_from_its_name(built: Path):
    ids = _ids(built)
    assert ids == _expected_ids()
    # Distinct objects, distinct ids (the context id is repeated by its expectations store only).
    assert len(set(ids.values())) == len(ids) - 1


def test_the_committed_gx_is_what_the_build_writes(built: Path):
    """Fails when gx/ was not rebuilt (and committed) after a change to build()."""
    assert sorted(_committed(ROOT / "gx")) == sorted(_committed(built))
    for name, content in _committed(built).items():
        assert (ROOT / "gx" / name).read_bytes() == content, (
            f"gx/{name} differs from a fresh build: run scripts/build_gx_project.py and commit gx/"
        )
