"""The Data Docs home page with a link to the health page, through GX's own extension point.

``DefaultSiteIndexBuilder`` takes a ``renderer`` (module_name/class_name) in the site config
(``gx/great_expectations.yml``, set by ``gx_project.build``); this one renders GX's index and adds
one line under the title that links ``health.html`` (``order_tracking.reports.health_page``).

GX's Status column knows only success or not: a run whose check raised (a lost connection, a
missing table, a window past raw retention) showed the same red cross as a run with findings.
Runs the index builder read as errors (``results_store.errors_read``, noted while it reads them)
get a warning sign with the error as its tooltip, and "Error" in the Status filter.
"""

from __future__ import annotations

import html

from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier
from great_expectations.render.components import RenderedStringTemplateContent
from great_expectations.render.renderer.site_builder import FALSEY_YAML_STRINGS, DefaultSiteIndexBuilder
from great_expectations.render.renderer.site_index_page_renderer import SiteIndexPageRenderer

from expectations_custom.data_docs.results_store import errors_read
from expectations_custom.data_docs.site_pages import page_identifiers
from order_tracking.reports.health_page import PAGE_NAME
from order_tracking.settings import HEALTH_NIGHTS

ERROR_TEXT = "Error"  # the Status filter's value for errored runs (GX's: "Success", "Failed")


class OrderTrackingSiteIndexBuilder(DefaultSiteIndexBuilder):
    """GX's index builder, listing the site's pages with ``site_pages`` when it keeps them all
    (``skip_and_clean_missing=False``: what ``OrderTrackingSiteBuilder`` asks). GX's own listing
    also read the whole results store, needed only to clean pages, and parsed every run time with
    dateutil."""

    def _build_validation_and_profiling_result_site_keys(
        self, skip_and_clean_missing: bool
    ) -> list[ValidationResultIdentifier]:
        validations = self.site_section_builders_config.get("validations", "None")
        if skip_and_clean_missing or not validations or validations in FALSEY_YAML_STRINGS:
            return super()._build_validation_and_profiling_result_site_keys(skip_and_clean_missing)
        return page_identifiers(self.target_store.store_backends[ValidationResultIdentifier])


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

    @classmethod
    def _generate_validation_results_link_table(cls, index_links_dict):
        table = super()._generate_validation_results_link_table(index_links_dict)
        errors = errors_read()
        if not errors:
            return table
        links = index_links_dict.get("validations_links", [])
        if len(links) != len(table.table_data):  # GX builds one row per link, in order
            return table  # another GX: its own cells, rather than marks on the wrong rows
        for link, row in zip(links, table.table_data, strict=True):
            error = errors.get(_key(link))
            if error is not None:
                row["validation_success"] = _error_cell(error)
                row["_validation_success_text"] = ERROR_TEXT
        return table


def _key(link: dict) -> tuple[str, ...]:
    """The stored result's key tuple (``ValidationResultIdentifier.to_tuple``) of an index link."""
    return (
        *link["expectation_suite_name"].split("."),
        *link["run_id"].to_tuple(),
        link.get("batch_identifier") or "__none__",
    )


def _error_cell(error: str) -> RenderedStringTemplateContent:
    """The Status cell of a run that could not check: a warning sign, the error as its tooltip."""
    return RenderedStringTemplateContent(
        content_block_type="string_template",
        string_template={
            "template": "$validation_success",
            "params": {"validation_success": ""},
            "styling": {
                "params": {
                    "validation_success": {
                        "tag": "i",
                        "classes": ["fas", "fa-exclamation-triangle", "text-warning", "ot-error-icon"],
                        # GX writes attribute values as they are: escaped here (a driver's
                        # message quotes names: relation "x" does not exist).
                        "attributes": {"title": html.escape(f"error: {error}", quote=True)},
                    }
                },
                "classes": ["ge-index-page-table-validation-links-item"],
            },
        },
    )
