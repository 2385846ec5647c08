"""Where the alert and the final gate point the engineer for a Data Docs page: links that open.

A page is named by where the site lives: a file under the local site folder, or an object in the
bucket (``s3://bucket/<prefix>/data_docs/...``; with an S3-compatible endpoint, its path-style
HTTP address). ``ORDER_TRACKING_DATA_DOCS_BASE_URL`` (an S3 website, CloudFront, an nginx) is
where that site is served: each page's path in the site is mapped under it. Without it:

- a site in a bucket gets no ``s3://`` links (no mail client opens them): the pages are named by
  their path in the site, and one line says how to open them (``aws s3 sync``, ``aws s3 presign``);
- a local site gets bare file paths, and one line says so (they open on the machine that ran).

The worker that ran the checks knows its site; the notifier, in another process, may not: the
final gate records the run's :class:`DocsLinks` in XCom (``to_dict``) and the notifier uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from order_tracking.settings import DATA_DOCS_PREFIX, Settings

BASE_URL_VAR = "ORDER_TRACKING_DATA_DOCS_BASE_URL"


@dataclass(frozen=True)
class DocsLinks:
    """How to turn a page that GX names into something an engineer can open."""

    base_url: str | None = None  # where the site is served (no credentials: settings drop them)
    site_root: str | None = None  # the local site folder
    site_urls: tuple[str, ...] = ()  # the site's addresses in a bucket, each ending in "/"
    index: str | None = None  # the home page as the run names it (file path or s3://)

    @classmethod
    def from_settings(cls, settings: Settings) -> DocsLinks:
        store = settings.gx_store
        urls: tuple[str, ...] = ()
        if store is not None:
            key = store.key(DATA_DOCS_PREFIX) + "/"
            urls = (f"s3://{store.bucket}/{key}",)
            if settings.s3_endpoint_url:
                urls += (f"{settings.s3_endpoint_url}/{store.bucket}/{key}",)
        return cls(
            base_url=settings.alert.data_docs_base_url,
            site_root=str(settings.data_docs_index.parent),
            site_urls=urls,
            index=settings.data_docs_location,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocsLinks:
        return cls(
            base_url=data.get("base_url"),
            site_root=data.get("site_root"),
            site_urls=tuple(data.get("site_urls") or ()),
            index=data.get("index"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "site_root": self.site_root,
            "site_urls": list(self.site_urls),
            "index": self.index,
        }

    @property
    def in_bucket(self) -> bool:
        return bool(self.site_urls)

    @property
    def site(self) -> str:
        """The site's own address, for messages: ``s3://.../data_docs/`` or the local folder."""
        return self.site_urls[0] if self.site_urls else str(self.site_root or "")

    def relative(self, page: str) -> str | None:
        """The page's path inside the site (``validations/.../x.html``), if it is in this site."""
        for url in self.site_urls:
            if page.startswith(url):
                return unquote(page[len(url) :])
        path = unquote(page.removeprefix("file://")) if page.startswith("file://") else page
        if self.site_root and "://" not in path:
            try:
                return Path(path).resolve().relative_to(Path(self.site_root).resolve()).as_posix()
            except ValueError:
                return None
        return None

    def link(self, page: str | None) -> str | None:
        """What the email shows for ``page``: a web address, a path in the site, or a file path."""
        if not page:
            return None
        relative = self.relative(page)
        if self.base_url and relative is not None:
            return self.base_url.rstrip("/") + "/" + quote(relative)
        if page.startswith("s3://"):
            return relative or page.removeprefix("s3://").split("/", 1)[-1]  # a key, never s3://
        if page.startswith("file://"):
            return unquote(page.removeprefix("file://"))
        return page

    def note(self) -> str | None:
        """The one line on how to open the pages, when they are not web links."""
        if self.base_url:
            return None
        if self.in_bucket:
            site = self.site
            return (
                f"The pages are in the bucket {site} (no {BASE_URL_VAR} to serve them): "
                f"`aws s3 sync {site} dq-docs/` and open dq-docs/ + the paths above, or "
                f"`aws s3 presign {site}index.html` for a link that opens for an hour."
            )
        return (
            f"Links are file paths on the machine that ran the checks; set {BASE_URL_VAR} "
            "to the address that serves the site for web links."
        )


SETTINGS_PER_PROCESS = (
    "ORDER_TRACKING_GX_STORE_URL, ORDER_TRACKING_S3_ENDPOINT_URL and "
    f"{BASE_URL_VAR} must be the same for the workers and the dag-processor (README: settings per process)"
)


def disagreement(run: DocsLinks | None, pages: list[str], own: DocsLinks) -> str | None:
    """One line when the notifier's settings (``own``) do not say where the run put its pages.

    ``run``: what the final gate recorded from the worker's settings; without it (the gate did not
    get that far), the DQ tasks' page addresses tell a bucket from a local folder. Local folders
    are not compared: each machine has its own path.
    """
    if run is not None:
        if run.site_urls[:1] == own.site_urls[:1] and run.base_url == own.base_url:
            return None
        return (
            f"settings disagree: the run's Data Docs are at {run.site} (base URL "
            f"{run.base_url or 'unset'}), the notifier's settings say {own.site} (base URL "
            f"{own.base_url or 'unset'}); links below follow the run. {SETTINGS_PER_PROCESS}"
        )
    remote = [p for p in pages if "://" in p and not p.startswith("file://")]
    if remote and not own.in_bucket:
        where = remote[0].rsplit("/validations/", 1)[0] + "/"
    elif own.in_bucket and len(remote) < len(pages):
        where = "a local folder"
    else:
        return None
    return (
        f"settings disagree: the run's Data Docs pages are in {where}, the notifier's settings say "
        f"{own.site}. {SETTINGS_PER_PROCESS}"
    )
