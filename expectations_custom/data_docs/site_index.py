"""The Data Docs home page with a link to the health page, through GX's own extension point.

``DefaultSiteIndexBuilder`` takes a ``renderer`` (module_name/class_name) in the site config
(``gx/great_expectations.yml``, set by ``gx_project.build``); this one renders GX's index and adds
one line under the title that links ``health.html`` (``order_tracking.reports.health_page``).
"""

from __future__ import annotations

from great_expectations.render.components import RenderedStringTemplateContent
from great_expectations.render.renderer.site_index_page_renderer import SiteIndexPageRenderer

from order_tracking.reports.health_page import PAGE_NAME
from order_tracking.settings import HEALTH_NIGHTS


class OrderTrackingSiteIndexPageRenderer(SiteIndexPageRenderer):
    @classmethod
    def render(cls, index_links_dict):
        document = super().render(index_links_dict)
        if document is None or not getattr(document, "sections", None):
            return document  # GX logged its own rendering error
        link = RenderedStringTemplateContent(
            content_block_type="string_template",
            string_template={
                "template": "$link: findings, open exceptions by age, Test 0 counts and VACUUM effect",
                "params": {"link": f"Health of the last {HEALTH_NIGHTS} nights"},
                "styling": {
                    "params": {
                        "link": {
                            "tag": "a",
                            "attributes": {"href": PAGE_NAME, "id": "health-page-link"},
                            "classes": ["font-weight-bold"],
                        }
                    }
                },
            },
            styling={"classes": ["col-12", "mb-3"]},
        )
        document.sections[0].content_blocks.insert(1, link)
        return document
