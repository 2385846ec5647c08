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


def test_site_pages_are_listed_as_gx_lists_them(tmp_path):
    """``site_pages`` lists a local site's pages by one scandir walk (a year of pages is listed on
    every build): the same keys and identifiers as GX's ``list_keys`` and ``from_tuple``."""
    from great_expectations.data_context.store.tuple_store_backend import TupleFilesystemStoreBackend
    from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier

    from expectations_custom.data_docs.site_pages import page_identifiers, page_tuples

    site = tmp_path / "local_site"
    pages = [
        "validations/order_tracking_missing_spath/as_of_20261202T030000/20261203T171341.447746Z/w.html",
        "validations/order/tracking/nested_suite/run_b/20261130T030000.000001Z/whole.html",  # dotted suite
        "validations/suite/odd run/2026-12-03 17:13:41+00:00/batch.html",  # not GX's form: its parse
        "validations/.ipynb_checkpoints/x.html",  # ignored by GX
        "validations/suite/run/20261203T171341.447746Z/notes.txt",  # not a page
        "static/styles/page.html",  # outside validations/
        "validations.fresh/suite/run/20261203T171341.447746Z/b.html",  # GX lists this one; we do not
    ]
    for page in pages:
        (site / page).parent.mkdir(parents=True, exist_ok=True)
        (site / page).write_text("<html></html>", encoding="utf-8")
    backend = TupleFilesystemStoreBackend(
        base_directory=str(site), filepath_prefix="validations", filepath_suffix=".html"
    )
    gx_keys = set(backend.list_keys())
    ours = set(page_tuples(backend))
    assert ("fresh", "suite", "run", "20261203T171341.447746Z", "b") in gx_keys - ours
    assert ours == {k for k in gx_keys if k[0] != "fresh"}
    assert len(ours) == 3
    gx_ids = {ValidationResultIdentifier.from_tuple(k) for k in ours}
    assert set(page_identifiers(backend)) == gx_ids
    assert {i.run_id.run_time for i in page_identifiers(backend)} == {i.run_id.run_time for i in gx_ids}
    empty = TupleFilesystemStoreBackend(
        base_directory=str(tmp_path / "empty_site"), filepath_prefix="validations", filepath_suffix=".html"
    )
    assert page_tuples(empty) == empty.list_keys() == []  # no validations/ folder yet


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_the_index_builder_is_ours_and_lists_the_pages():
    from expectations_custom.data_docs.site_index import OrderTrackingSiteIndexBuilder

    context = gx_project.load(Settings.from_env())
    (builder,) = data_docs.site_builders(context).values()
    assert type(builder.site_index_builder) is OrderTrackingSiteIndexBuilder  # gx/great_expectations.yml
    page = _site(context) / "validations" / "suite_x" / "run_y" / "20261203T171341.447746Z" / "batch_z.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>", encoding="utf-8")
    keys = builder.site_index_builder._build_validation_and_profiling_result_site_keys(False)
    assert [k.to_tuple() for k in keys] == [("suite_x", "run_y", "20261203T171341.447746Z", "batch_z")]
