"""The Data Docs site builder: GX's, copying GX's static assets once per GX version, not per build.

GX's ``SiteBuilder.build`` copies the ~20 files of ``great_expectations/render/view/static``
(4 MB of CSS, JS, fonts, images) into the site on every build: ~45 ms of every ``monitor`` run on
the 2-core bench machine (a fifth of what ``monitor`` adds to validation, issue 10), and 4 MB
uploaded every night when the site is in a bucket. The files change only with GX itself, so this
builder copies them when the site's stamp (``static/order_tracking_assets.txt``) names another GX
version or is missing, and writes the stamp last: a copy cut short is redone on the next build.
Removing ``static/`` (or the stamp) forces a fresh copy; ``clean_site`` removes both.

The stamp names the vendored CSS/JS set (``vendor/data_docs/VERSIONS.txt``) too: a site in a
bucket receives those files when GX's are stored (``s3_store.S3DataDocsStoreBackend``), so a new
vendored set must trigger a copy as a new GX does. A local site gets them from
``data_docs_offline.localize_site``, which checks the set on every build.

Two more things make one site safe to build from several runs at once (issue 25 F2, issue 28):

- GX's index builder removed every page whose result was not in the listing it took at the start
  of the build: a run that listed the results just before another run stored its own deleted that
  run's fresh page. Pages are never removed here (``prune`` removes results and pages together);
  the index lists the pages there are, and skips one whose result is gone.
- Every stored result the index would list gets a page, also one whose run was killed (or lost its
  store) after GX stored the result and before the pages were built. After the index is written the
  pages are listed again: when another run added one meanwhile, the index is written again, so the
  last index written lists every page. A page asked for but not there is logged as a warning.

Named by ``class_name``/``module_name`` in ``gx/great_expectations.yml`` (``gx_project.build``),
GX's own extension point for a site's builder.
"""

from __future__ import annotations

import hashlib
import logging

import great_expectations
from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier
from great_expectations.exceptions import InvalidKeyError
from great_expectations.render.renderer.site_builder import SiteBuilder

from expectations_custom.data_docs.site_pages import page_tuples
from order_tracking.reports import data_docs_offline

logger = logging.getLogger(__name__)

STAMP_KEY = ("static", "order_tracking_assets.txt")
INDEX_PASSES = 3  # index writes per build at most: one, plus one per page another run added meanwhile


def assets_stamp() -> str:
    """What the stamp holds once this GX version's static assets (and the vendored set) are there."""
    versions = data_docs_offline.VENDOR_DIR / data_docs_offline.VERSIONS_FILE
    vendored = hashlib.sha256(versions.read_bytes()).hexdigest()[:16]
    return f"great_expectations {great_expectations.__version__}; vendor/data_docs {vendored}"


class OrderTrackingSiteBuilder(SiteBuilder):
    """GX's ``SiteBuilder`` whose ``build`` copies the static assets only when the stamp differs."""

    def build(self, resource_identifiers=None, build_index: bool = True):
        # GX 1.x's SiteBuilder.build, with copy_static_assets made conditional, the pages of stored
        # results that have none added, and an index that never removes another run's page.
        wanted = None
        if resource_identifiers is not None:  # None: GX's "every page"
            wanted = list(resource_identifiers) + self.unrendered_results()
        for site_section_builder in self.site_section_builders.values():
            site_section_builder.build(resource_identifiers=wanted)
        self.copy_static_assets_if_stale()
        index_links_dict = None
        for _ in range(INDEX_PASSES if build_index else 0):
            before = self.page_keys()
            self.warn_unbuilt(wanted, before)
            _, index_links_dict = self.site_index_builder.build(
                skip_and_clean_missing=False, build_index=build_index
            )
            added = self.page_keys() - before
            if not added:
                break
            wanted = None  # only the index is redone: the new pages are there
        else:
            logger.warning(
                "Data Docs index at %s written while other runs kept adding pages; the next build lists them",
                self.get_resource_url(only_if_exists=False),
            )
        return self.get_resource_url(only_if_exists=False), index_links_dict

    def page_keys(self) -> set[tuple[str, ...]]:
        """The key tuples of the validation pages the site holds now."""
        return set(page_tuples(self.target_store.store_backends[ValidationResultIdentifier]))

    def unrendered_results(self) -> list:
        """The stored results the index lists (the newest ``validation_results_limit``) that have
        no page: a run killed, or whose site was out of reach, after GX stored its result."""
        section = self.site_section_builders.get("validations")
        if section is None:
            return []
        keys = [k for k in section.source_store.list_keys() if isinstance(k, ValidationResultIdentifier)]
        keys.sort(key=lambda k: k.run_id.run_time, reverse=True)
        limit = getattr(self.site_index_builder, "validation_results_limit", None)
        pages = self.page_keys()
        missing = [k for k in keys[:limit] if k.to_tuple() not in pages]
        if missing:
            logger.info("Data Docs: building %d page(s) of stored results that had none", len(missing))
        return missing

    def warn_unbuilt(self, wanted: list | None, pages: set[tuple[str, ...]]) -> None:
        """A validation page asked for that is not in the site: GX logged why and went on."""
        for key in wanted or []:
            if isinstance(key, ValidationResultIdentifier) and key.to_tuple() not in pages:
                logger.warning(
                    "Data Docs page not built for %s, run %s (see the GX error above)",
                    key.expectation_suite_identifier.name,
                    key.run_id.run_name,
                )

    def copy_static_assets_if_stale(self) -> None:
        """Copy GX's static assets unless the stamp says they are there."""
        backend = self.target_store.store_backends["static_assets"]
        stamp = assets_stamp()
        try:  # one read: a missing stamp is one request, not a has_key and a get
            if backend.get(STAMP_KEY).strip() == stamp:
                return
        except InvalidKeyError:
            pass
        self.target_store.copy_static_assets()
        backend.set(STAMP_KEY, stamp, content_type="text/plain")
