"""Building the Data Docs site: the pages a run asked for, the index, the health page, offline.

The checkpoints' Data Docs action (``actions.OrderTrackingDataDocsAction``) builds through here.
Within ``data_docs_deferred`` (the ``monitor`` command) the pages of every check are built once,
at the end of the run, by one ``SiteBuilder`` per site that also answers every URL lookup of the
run: GX makes a new site builder (~4 ms of config substitution and class loading) for each
``get_docs_sites_urls`` call, and a run made nine of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.data_context.util import instantiate_class_from_config
from great_expectations.render.view.view import DefaultJinjaView
from jinja2 import BytecodeCache

from expectations_custom.data_docs.results_store import listed_once
from expectations_custom.run_settings import run_settings
from expectations_custom.scoped import bound
from order_tracking.reports import data_docs_offline, health_page
from order_tracking.settings import Settings

logger = logging.getLogger(__name__)

SITE_BUILDER_MODULE = "great_expectations.render.renderer.site_builder"


class _SharedTemplateCache(BytecodeCache):
    """Compiled Data Docs templates, kept for the life of the process.

    ``UpdateDataDocsAction`` builds a new ``SiteBuilder`` per checkpoint run, and every GX view
    makes its own Jinja ``Environment``, so each run parsed and compiled the same ~160 templates
    again: about 0.3 s of every checkpoint, more than the rule's SQL on 1M orders (benchmark,
    issue 6). Jinja's bytecode cache is keyed by template name and source checksum, so a cached
    template is exactly what compiling the source again would give.
    """

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, bytes]] = {}

    def load_bytecode(self, bucket) -> None:
        hit = self._code.get(bucket.key)
        if hit is not None and hit[0] == bucket.checksum:
            bucket.bytecode_from_string(hit[1])

    def dump_bytecode(self, bucket) -> None:
        self._code[bucket.key] = (bucket.checksum, bucket.bytecode_to_string())


def _share_data_docs_template_cache() -> None:
    """Give every GX Jinja view the one process-wide template cache (idempotent)."""
    if getattr(DefaultJinjaView.__init__, "_order_tracking_cache", False):
        return
    cache = _SharedTemplateCache()
    original = DefaultJinjaView.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.env.bytecode_cache = cache

    __init__._order_tracking_cache = True
    DefaultJinjaView.__init__ = __init__


_share_data_docs_template_cache()


def site_builders(context) -> dict:
    """A new ``SiteBuilder`` per configured Data Docs site, by site name, as GX makes them."""
    return {
        name: instantiate_class_from_config(
            config=config,
            runtime_environment={
                "data_context": context,
                "root_directory": context.root_directory,
                "site_name": name,
            },
            config_defaults={"class_name": "SiteBuilder", "module_name": SITE_BUILDER_MODULE},
        )
        for name, config in (context.variables.data_docs_sites or {}).items()
    }


@dataclass
class DataDocsBatch:
    """The pages the checkpoints of one ``monitor`` run asked for, built together at its end,
    and the site builders that build them and answer the run's URL lookups."""

    resource_identifiers: list = field(default_factory=list)
    _builders: dict | None = None

    def builders(self, context) -> dict:
        if self._builders is None:
            self._builders = site_builders(context)
        return self._builders


_DATA_DOCS_BATCH: ContextVar[DataDocsBatch | None] = ContextVar("order_tracking_docs_batch", default=None)


def data_docs_deferred() -> AbstractContextManager[DataDocsBatch]:
    """Inside, the Data Docs action records the pages to build instead of building them.

    The caller builds them all, with the index, in one pass (:func:`build_data_docs`, inside the
    same block) once every checkpoint ran: one site build per ``monitor`` run instead of one per
    check plus the index (GX makes a new site builder and rereads the results store for each).
    A checkpoint run alone, as in Airflow, builds its own pages and the index.
    """
    return bound(_DATA_DOCS_BATCH, DataDocsBatch())


def deferred_batch() -> DataDocsBatch | None:
    """The batch of the enclosing ``data_docs_deferred`` block, if any."""
    return _DATA_DOCS_BATCH.get()


def _run_site_builders(context) -> dict:
    """The run's site builders inside ``data_docs_deferred``, new ones outside."""
    batch = _DATA_DOCS_BATCH.get()
    return batch.builders(context) if batch is not None else site_builders(context)


def docs_sites_urls(
    context, resource_identifier=None, only_if_exists: bool = True, site_names: list[str] | None = None
) -> list[dict[str, str | None]]:
    """GX's ``get_docs_sites_urls``, answered by the run's site builders when deferred."""
    return [
        {
            "site_name": name,
            "site_url": builder.get_resource_url(
                resource_identifier=resource_identifier, only_if_exists=only_if_exists
            ),
        }
        for name, builder in _run_site_builders(context).items()
        if not site_names or name in site_names
    ]


def build_data_docs(context, resource_identifiers: list) -> dict:
    """Build the given pages and the index, then make them render offline.

    Suite pages already built are skipped: they change only when ``gx/`` is rebuilt.
    Returns the index URL per site name, as GX's ``build_data_docs`` does.
    """
    started = time.time() - 1  # file mtimes have coarse resolution on some filesystems
    asked = list(dict.fromkeys(resource_identifiers))
    if not asked:
        raise ValueError("no Data Docs page to build")  # GX reads an empty list as "every page"
    # At least one page: the suite pages exist, only the index has to change.
    builders = _run_site_builders(context)  # one set for the page checks and the build
    wanted = [r for r in asked if not _suite_page_exists(builders, r)] or asked[:1]
    settings = run_settings()  # the health page reads the warehouse of this run
    urls = {}
    for name, builder in builders.items():
        # The index, the validation section and the health page each list every stored result.
        with _site_lock(builder), listed_once():
            index = builder.build(resource_identifiers=wanted, build_index=True)
            if not index:
                continue
            url = urls[name] = index[0]
            if not url.startswith("file://"):  # a site in a bucket (s3_store makes pages offline)
                refresh_health_page(context, None, settings)
                continue
            site = Path(url.removeprefix("file://")).parent
            try:  # a styling problem must never fail a check
                data_docs_offline.localize_site(site, since=started)
            except Exception:
                logger.warning("Data Docs at %s still load CSS/JS from CDNs", site, exc_info=True)
            refresh_health_page(context, site, settings)  # the index links the health page: built together
    return urls


@contextlib.contextmanager
def _site_lock(builder) -> Iterator[None]:
    """For a site on this machine's disk: one build at a time (an exclusive ``flock``).

    Two runs building one folder at once (two ``monitor`` runs, two Airflow runs of a backfill)
    could otherwise read a page the other is still writing (``localize_site`` rewrites the pages
    of the build) and write it back cut short. A site in a bucket needs no lock: each object is
    written whole, and the site builder redoes an index that missed another run's page.
    """
    backend = builder.target_store.store_backends.get(ValidationResultIdentifier)
    base = getattr(backend, "full_base_directory", None)
    if base is None:
        yield
        return
    site = Path(base)
    site.parent.mkdir(parents=True, exist_ok=True)
    with open(site.parent / f".{site.name}.build.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def _suite_page_exists(builders: dict, identifier) -> bool:
    """A suite's page changes only when gx/ is rebuilt: render it once, not on every run."""
    if not isinstance(identifier, ExpectationSuiteIdentifier):
        return False
    return bool(builders) and all(
        b.get_resource_url(resource_identifier=identifier, only_if_exists=True) for b in builders.values()
    )


def refresh_health_page(context, site: Path | None, settings: Settings) -> None:
    """Rebuild ``health.html`` in the local site folder ``site``, or in the bucket when ``None``.

    Never raises: the health page is a view, it must not fail a check or the final gate.
    """
    if site is None:
        _publish_health_page(context, settings)
        return
    try:
        health_page.build(context, site, settings)
    except Exception:
        logger.warning("Data Docs health page at %s not rebuilt", site, exc_info=True)


def _publish_health_page(context, settings: Settings) -> None:
    """The health page (linked from the index) for a site in a bucket: built aside, then stored."""
    from order_tracking.stores import s3 as s3_store

    try:
        with tempfile.TemporaryDirectory() as tmp:
            page = health_page.build(context, Path(tmp), settings)
            s3_store.put_site_page(
                settings.gx_store, settings.s3_endpoint_url, page.name, page.read_text(encoding="utf-8")
            )
    except Exception:
        logger.warning("Data Docs health page in %s not rebuilt", settings.gx_store, exc_info=True)
