"""Offline Data Docs: after a monitor run the site loads its CSS/JS from disk, not from CDNs.

The site is built by a real ``monitor`` run on the embedded SQLite warehouse, into a copy of the
repo's ``gx/`` under tmp_path (ORDER_TRACKING_GX_ROOT), so the repo's own site is never touched.
The browser check uses Debian's ``chromium`` (installed by .ci/run) with every host name mapped
to "not found": a page that still needed the internet would lose its styling and scripts.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from order_tracking.reports import data_docs_offline as offline
from tests.conftest import ROOT, run_cli

AS_OF = "2026-11-25T03:00:00"
# The hash GX 1.24 puts on its popper.js 1.12.9 tag (its pages carry it).
POPPER_SRI = "sha384-ApNbgh9B+Y1QKtv3Rn7W3mgPxhU9K/ScQsAP7hUibX39j7fakFPskvXusvfa0b4Q"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No network at all: every host name fails to resolve, like inside a closed network.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1280,900",
]


@pytest.fixture
def built_site(tmp_path: Path, sqlite_urls, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Seed the embedded warehouse, run all checks, return the Data Docs site folder."""
    gx_copy = tmp_path / "gx"
    shutil.copytree(ROOT / "gx", gx_copy, ignore=shutil.ignore_patterns("data_docs", "validations"))
    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(gx_copy))
    seed = run_cli(
        "seed", "--orders", "2000", "--as-of", AS_OF, "--manifest", str(tmp_path / "m.json"), "--quiet"
    )
    assert seed.returncode == 0, seed.stderr
    monitor = run_cli("monitor", "--as-of", AS_OF)
    assert monitor.returncode in (1, 2), monitor.stderr  # the seeded anomalies are found
    site = gx_copy / "uncommitted" / "data_docs" / "local_site"
    assert (site / "index.html").is_file()
    return site


def _validation_page(site: Path, check: str) -> Path:
    (page,) = (site / "validations" / f"order_tracking_{check}").rglob("*.html")
    return page


def _chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_monitor_leaves_no_remote_stylesheet_or_script(built_site: Path):
    pages = sorted(built_site.rglob("*.html"))
    assert len(pages) >= 9  # index + 4 suites + 4 validations
    assert offline.remote_references(built_site) == []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"""<(link|script)\b[^>]*\b(href|src)=["'](https?:)?//""", text), page
        assert "dataContextId=" not in text  # the S3 logo (a tracking pixel) is the local copy now
        # Every stylesheet/script reference resolves to a file in the site. (Not the favicon: GX
        # itself writes it one folder too shallow on validation pages.)
        refs = re.findall(r"""<link rel="stylesheet"[^>]*\bhref=["']([^"']+)["']""", text)
        refs += re.findall(r"""<script\b[^>]*\bsrc=["']([^"']+)["']""", text)
        assert len(refs) >= (4 if page.name == "health.html" else 15), page  # health: css + 3 vega
        for ref in refs:
            assert (page.parent / ref).resolve().is_file(), (page, ref)
    # Idempotent: a second pass finds nothing left to rewrite and changes no byte.
    before = {p: p.read_bytes() for p in pages}
    assert offline.localize_site(built_site) == 0
    assert {p: p.read_bytes() for p in pages} == before


def test_headless_chromium_renders_validation_page_styled_from_disk(built_site: Path, tmp_path: Path):
    page = _validation_page(built_site, "reactivated_missing_ecs")

    shot = tmp_path / "page.png"
    proc = _chromium(f"--screenshot={shot}", page.as_uri(), user_data=tmp_path / "profile1")
    assert shot.is_file(), proc.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000  # a rendered page, not a blank one

    # Computed styles prove the stylesheet was applied: a copy of the page (same folder, so the
    # same relative links) reports what the browser computed into its DOM.
    probe = page.with_name("probe.html")
    report = (
        "<script>document.body.setAttribute('data-probe', [getComputedStyle(document.body).margin, "
        "getComputedStyle(document.body).fontFamily, typeof jQuery, typeof jQuery.fn.bootstrapTable, "
        "typeof vegaEmbed].join('|'));</script></body>"
    )
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", report), encoding="utf-8")
    proc = _chromium(
        "--dump-dom", "--virtual-time-budget=3000", probe.as_uri(), user_data=tmp_path / "profile2"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert match, proc.stdout[-2000:]
    margin, font, jquery, table_plugin, vega = match.group(1).split("|")
    assert margin == "0px"  # browser default is 8px; bootstrap's reboot sets 0
    assert font.startswith("-apple-system")  # bootstrap 4.3.1's font stack
    assert (jquery, table_plugin, vega) == ("function", "function", "function")
    assert 'class="bootstrap-table bootstrap4"' in proc.stdout  # bootstrap-table ran on the page
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script error, no failed load
    # The stylesheet links in the rendered DOM are relative and point at files in the site.
    hrefs = re.findall(r'<link rel="stylesheet"[^>]*href="([^"]+)"', proc.stdout)
    assert any(h.endswith("bootstrap@4.3.1/dist/css/bootstrap.min.css") for h in hrefs), hrefs
    for href in hrefs:
        assert not re.match(r"(https?:)?//", href)
        assert (page.parent / href).resolve().is_file()


def test_rewrite_checks_integrity_and_leaves_unknown_urls(tmp_path: Path):
    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    popper = "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js"
    jquery = "https://code.jquery.com/jquery-3.7.1.min.js"
    (site / "sub" / "p.html").write_text(
        "<html><head>\n"
        f'<script src="{popper}" integrity="{POPPER_SRI}" crossorigin="anonymous"></script>\n'
        f'<script src="{jquery}" integrity="sha384-bogus" crossorigin="anonymous"></script>\n'
        '<link rel="stylesheet" href="https://example.com/other.css">\n'
        '<a href="https://greatexpectations.io">docs links stay</a>\n'
        "</head></html>\n",
        encoding="utf-8",
    )

    assert offline.localize_site(site) == 1
    text = (site / "sub" / "p.html").read_text(encoding="utf-8")
    # The matching file replaces the CDN; integrity/crossorigin go (file:// cannot do CORS).
    assert '<script src="../static/vendor/popper.js@1.12.9/dist/umd/popper.min.js"></script>' in text
    assert f'<script src="{jquery}" integrity="sha384-bogus"' in text  # hash mismatch: left alone
    assert [tag for _, tag in offline.remote_references(site)] == [
        f'<script src="{jquery}" integrity="sha384-bogus" crossorigin="anonymous">',
        '<link rel="stylesheet" href="https://example.com/other.css">',
    ]
    assert '<a href="https://greatexpectations.io">' in text
    assert offline.localize_site(site) == 0
    assert offline.localize_site(tmp_path / "not_built_yet") == 0


def test_vendored_assets_are_pinned_listed_and_small():
    listed = {}
    for line in (offline.VENDOR_DIR / "VERSIONS.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("  "):
            path, digest = line.split()
            listed[path] = digest.removeprefix("sha256:")
    files = {
        p.relative_to(offline.VENDOR_DIR).as_posix(): p
        for p in offline.VENDOR_DIR.rglob("*")
        if p.is_file() and p.name != "VERSIONS.txt"
    }
    assert set(files) == set(listed)
    for path, digest in listed.items():
        assert hashlib.sha256(files[path].read_bytes()).hexdigest() == digest, path
    assert set(offline.CDN_FILES.values()) <= set(files)
    assert sum(p.stat().st_size for p in files.values()) < 4_000_000
    # Versions match the CDN URLs: the version in each URL is in the vendored path.
    for url, path in offline.CDN_FILES.items():
        version = re.search(r"(\d+\.\d+\.\d+)", url)
        if version:
            assert f"@{version.group(1)}/" in path, (url, path)


def test_a_checkpoint_run_alone_as_in_airflow_also_renders_offline(tmp_path, sqlite_urls, gx_copy):
    """The DAG runs one checkpoint per task, not ``monitor``: its pages and index must be local too."""
    from expectations_custom.run_settings import settings_bound
    from order_tracking.checks import gx_project
    from order_tracking.settings import Settings

    seed = run_cli(
        "seed", "--orders", "2000", "--as-of", AS_OF, "--manifest", str(tmp_path / "m.json"), "--quiet"
    )
    assert seed.returncode == 0, seed.stderr
    settings = Settings.from_env()
    context = gx_project.load(settings)
    with settings_bound(settings):  # as the DAG's operator runs it
        result = context.checkpoints.get("order_tracking_missing_spath").run(
            expectation_parameters={"as_of": AS_OF}
        )
    assert not result.success
    site = gx_copy / "uncommitted" / "data_docs" / "local_site"
    pages = list((site / "validations").rglob("*.html"))
    assert len(pages) == 1 and (site / "index.html").is_file()
    assert offline.remote_references(site) == []
