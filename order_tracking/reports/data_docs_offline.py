"""Make the GX Data Docs site readable without internet: point its CDN links at shipped copies.

GX writes every page with ``<link href>`` / ``<script src>`` pointing at public CDNs (bootstrap,
jquery, bootstrap-table, font-awesome, vega ...); inside a closed network the pages then render
unstyled. ``vendor/data_docs/`` holds those exact files, taken unmodified from the npm registry at
the versions the pages name (``vendor/data_docs/VERSIONS.txt``, ``vendor/fetch_data_docs_assets.sh``).

:func:`localize_site` copies them into ``<site>/static/vendor/`` and rewrites every known CDN
reference in every page to a relative path. It is idempotent and cheap (a page without a CDN
reference is only read), so the CLI, the DAG and a manual call can all run it after each build.

Why ``integrity``/``crossorigin`` are dropped from rewritten tags: a ``crossorigin`` request for a
``file://`` URL is a CORS request from the opaque origin ``null``, which Chromium blocks, so the
script would not load at all. Instead the shipped file is checked against the page's SRI hash
before the tag is rewritten; a mismatch leaves that tag pointing at the CDN (and is logged).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import posixpath
import re
import shutil
from functools import cache
from pathlib import Path

from order_tracking.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

VENDOR_DIR = PROJECT_ROOT / "vendor" / "data_docs"
SITE_VENDOR = Path("static") / "vendor"  # where the assets go, relative to the site root
VERSIONS_FILE = "VERSIONS.txt"

# Every CDN URL the GX 1.24 Data Docs templates use -> the shipped file (relative to VENDOR_DIR).
# A new GX release that changes a URL is caught by the test that no remote CSS/JS remains.
CDN_FILES: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap@4.3.1/dist/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap@4.3.1/dist/js/bootstrap.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "forevolve-bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker@1.9.0/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker@1.9.0/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "fortawesome-fontawesome-free@6.6.0/css/all.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js@1.12.9/dist/umd/popper.min.js"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (  # noqa: E501
        "bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (  # noqa: E501
        "bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (  # noqa: E501
        "bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    # Unversioned on the CDN ("newest 5.x"): pinned to the newest at vendoring time.
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.29.0/build/vega-embed.min.js",
}

# The header logo is fetched from S3 with the run time and the data context id in the query string
# (a tracking pixel); GX already writes the same image into the site, so use that one.
LOGO_URL_PREFIX = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png"
LOCAL_LOGO = Path("static") / "images" / "logo-long.png"

_TAG_RE = re.compile(r"<(?:link|script|img)\b[^>]*>", re.IGNORECASE)
_URL_ATTR_RE = re.compile(r"""\b(href|src)\s*=\s*(["'])(https?:)?//([^"']*)\2""", re.IGNORECASE)
_SRI_ATTR_RE = re.compile(r"""\s+(integrity|crossorigin)\s*=\s*(["'])([^"']*)\2""", re.IGNORECASE)
_STYLESHEET_OR_SCRIPT_RE = re.compile(r"<(?:link|script)\b[^>]*>", re.IGNORECASE)


def localize_site(site_dir: Path, since: float | None = None) -> int:
    """Copy the shipped assets into ``site_dir`` (once) and point every page at them.

    ``since`` (a ``time.time()`` value) limits the pass to pages written since then: a site keeps
    every night's pages, so rereading all of them on every run would grow without bound.
    Returns how many references were rewritten in this call (0 on a second call). A missing
    site (Data Docs not built yet) is not an error: nothing to do.
    """
    site_dir = Path(site_dir)
    if not site_dir.is_dir():
        return 0
    _install_assets(site_dir)
    total = 0
    for page in sorted(site_dir.rglob("*.html")):
        if since is not None and page.stat().st_mtime < since:
            continue
        text = page.read_text(encoding="utf-8")
        new_text, count = localize_page(text, page.relative_to(site_dir).as_posix())
        if count:
            page.write_text(new_text, encoding="utf-8")
            total += count
    log.info("Data Docs at %s: %d CDN reference(s) pointed at local copies", site_dir, total)
    return total


def localize_page(text: str, page: str) -> tuple[str, int]:
    """Point one page's CDN references at the shipped copies; ``page`` is its site-relative path.

    For sites that are not folders on this machine (an S3 bucket): the page is rewritten before
    it is stored, and :func:`vendored_assets` are stored beside it. Returns the text and the count.
    """
    if "//" not in text:
        return text, 0
    return _rewrite_page(text, posixpath.dirname(page) or ".")


def vendored_assets() -> list[tuple[str, Path]]:
    """``(site-relative path, file)`` for every shipped asset the rewritten pages point at."""
    return [
        ((SITE_VENDOR / p.relative_to(VENDOR_DIR)).as_posix(), p)
        for p in sorted(VENDOR_DIR.rglob("*"))
        if p.is_file()
    ]


def remote_references(site_dir: Path) -> list[tuple[Path, str]]:
    """``(page, tag)`` for every ``<link>``/``<script>`` in the site that still loads from a URL."""
    found = []
    for page in sorted(Path(site_dir).rglob("*.html")):
        for tag in _STYLESHEET_OR_SCRIPT_RE.findall(page.read_text(encoding="utf-8")):
            m = _URL_ATTR_RE.search(tag)
            if m:
                found.append((page, tag))
    return found


# --- internals --------------------------------------------------------------------------------


def _install_assets(site_dir: Path) -> None:
    """Copy ``vendor/data_docs`` to ``<site>/static/vendor`` unless the same set is already there."""
    target = site_dir / SITE_VENDOR
    wanted = (VENDOR_DIR / VERSIONS_FILE).read_text(encoding="utf-8")
    have = target / VERSIONS_FILE
    if have.is_file() and have.read_text(encoding="utf-8") == wanted:
        return  # VERSIONS.txt lists every file with its sha256: same text, same files
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(VENDOR_DIR, target)


def _rewrite_page(text: str, page_dir: str) -> tuple[str, int]:
    """``page_dir``: the page's folder relative to the site root, posix style ("." for the root)."""
    count = 0

    def one_tag(match: re.Match) -> str:
        nonlocal count
        tag = match.group(0)
        attr = _URL_ATTR_RE.search(tag)
        if not attr:
            return tag
        url = "https:" + "//" + attr.group(4)  # protocol-relative URLs are https in practice
        local = _local_target(url, tag)
        if local is None:
            return tag
        rel = posixpath.relpath(local.as_posix(), page_dir)
        quote = attr.group(2)
        new_tag = tag[: attr.start()] + f"{attr.group(1)}={quote}{rel}{quote}" + tag[attr.end() :]
        count += 1
        return _SRI_ATTR_RE.sub("", new_tag)

    return _TAG_RE.sub(one_tag, text), count


def _local_target(url: str, tag: str) -> Path | None:
    """The site-relative file for ``url``, or None to leave the tag alone."""
    if tag[:4].lower() == "<img":
        return LOCAL_LOGO if url.startswith(LOGO_URL_PREFIX) else None
    vendored = CDN_FILES.get(url)
    if vendored is None:
        log.warning("Data Docs: no local copy for %s; the page loads it from the internet", url)
        return None
    sri = _SRI_ATTR_RE.findall(tag)
    expected = next((value for name, _, value in sri if name.lower() == "integrity"), None)
    if expected and not _matches_sri(VENDOR_DIR / vendored, expected):
        log.warning("Data Docs: vendored %s does not match the page's integrity hash; kept the CDN", vendored)
        return None
    return SITE_VENDOR / vendored


def _matches_sri(path: Path, integrity: str) -> bool:
    """True if ``path`` matches any of the ``sha256-``/``sha384-``/``sha512-`` hashes given."""
    for token in integrity.split():
        algo, _, digest = token.partition("-")
        if algo in ("sha256", "sha384", "sha512") and _sri_digest(path, algo) == digest:
            return True
    return False


@cache
def _sri_digest(path: Path, algo: str) -> str:
    return base64.b64encode(hashlib.new(algo, path.read_bytes()).digest()).decode("ascii")
