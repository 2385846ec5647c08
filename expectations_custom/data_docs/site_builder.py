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

Named by ``class_name``/``module_name`` in ``gx/great_expectations.yml`` (``gx_project.build``),
GX's own extension point for a site's builder.
"""

from __future__ import annotations

import hashlib

import great_expectations
from great_expectations.exceptions import InvalidKeyError
from great_expectations.render.renderer.site_builder import SiteBuilder

from order_tracking.reports import data_docs_offline

STAMP_KEY = ("static", "order_tracking_assets.txt")


def assets_stamp() -> str:
    """What the stamp holds once this GX version's static assets (and the vendored set) are there."""
    versions = data_docs_offline.VENDOR_DIR / data_docs_offline.VERSIONS_FILE
    vendored = hashlib.sha256(versions.read_bytes()).hexdigest()[:16]
    return f"great_expectations {great_expectations.__version__}; vendor/data_docs {vendored}"


class OrderTrackingSiteBuilder(SiteBuilder):
    """GX's ``SiteBuilder`` whose ``build`` copies the static assets only when the stamp differs."""

    def build(self, resource_identifiers=None, build_index: bool = True):
        # GX 1.x's SiteBuilder.build, with copy_static_assets made conditional.
        for site_section_builder in self.site_section_builders.values():
            site_section_builder.build(resource_identifiers=resource_identifiers)
        self.copy_static_assets_if_stale()
        _, index_links_dict = self.site_index_builder.build(build_index=build_index)
        return self.get_resource_url(only_if_exists=False), index_links_dict

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
