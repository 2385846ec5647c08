"""The Data Docs site builder copies GX's static assets once per GX version, not on every build.

Real builds of the committed project (a copy under tmp_path) through GX's own
``context.build_data_docs``, so the site config's ``class_name``/``module_name`` are what is tested.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from expectations_custom.data_docs import build as data_docs
from expectations_custom.data_docs.site_builder import STAMP_KEY, OrderTrackingSiteBuilder, assets_stamp
from order_tracking.checks import gx_project
from order_tracking.settings import Settings

ASSET = Path("static", "styles", "data_docs_default_styles.css")


def _site(context) -> Path:
    return Path(context.root_directory) / "uncommitted" / "data_docs" / "local_site"


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_static_assets_are_copied_once_then_again_only_for_another_gx_version():
    context = gx_project.load(Settings.from_env())
    (builder,) = data_docs.site_builders(context).values()
    assert type(builder) is OrderTrackingSiteBuilder  # named in gx/great_expectations.yml

    context.build_data_docs()
    site = _site(context)
    stamp = site.joinpath(*STAMP_KEY)
    assert stamp.read_text(encoding="utf-8") == assets_stamp()
    assert (site / ASSET).is_file() and (site / "index.html").is_file()

    # The same GX version: the next build leaves the assets alone (a removed one stays removed).
    (site / ASSET).unlink()
    (site / "index.html").unlink()
    context.build_data_docs()
    assert not (site / ASSET).exists()
    assert (site / "index.html").is_file()  # the rest of the build ran

    # A stamp from another GX version (an upgrade): everything is copied again, then stamped.
    stamp.write_text("great_expectations 0.18.0; vendor/data_docs 0", encoding="utf-8")
    context.build_data_docs()
    assert (site / ASSET).is_file()
    assert stamp.read_text(encoding="utf-8") == assets_stamp()

    # No stamp (static/ removed by hand, or a copy cut short before the stamp): copied again.
    stamp.unlink()
    (site / ASSET).unlink()
    context.build_data_docs()
    assert (site / ASSET).is_file() and stamp.is_file()


def test_the_stamp_changes_with_the_gx_version_and_with_the_vendored_set(tmp_path, monkeypatch):
    import great_expectations

    from order_tracking.reports import data_docs_offline

    stamp = assets_stamp()
    with monkeypatch.context() as patched:
        patched.setattr(great_expectations, "__version__", "1.99.0")
        assert assets_stamp() != stamp and "1.99.0" in assets_stamp()
    assert assets_stamp() == stamp
    vendor = tmp_path / "data_docs"
    vendor.mkdir()
    name = data_docs_offline.VERSIONS_FILE
    versions = (data_docs_offline.VENDOR_DIR / name).read_text(encoding="utf-8")
    (vendor / name).write_text(versions + "new-lib@1.0.0 sha256 0\n", encoding="utf-8")
    monkeypatch.setattr(data_docs_offline, "VENDOR_DIR", vendor)
    assert assets_stamp() != stamp  # a bucket site must receive the new vendored files
