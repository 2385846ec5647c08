"""The validation pages a Data Docs site holds, listed fast enough to do on every build.

GX's filesystem ``list_keys`` walks the whole site and, for every file, takes a relative path,
checks the prefix and suffix and converts the path; the index builder then parses each page's run
time with dateutil. A build lists the pages four times (the pages of stored results that have
none, before and after the index for the F2 re-check, and GX's index builder). With a year of
pages kept (the benchmark's retention measure, issue 25) that was most of what the stored pages
added to a run's fixed cost. Here a local site's pages are listed with one ``os.scandir`` walk of
its ``validations/`` folder, and run times are read with ``datetime.fromisoformat``; any other
backend (the S3 site) lists as GX does.
"""

from __future__ import annotations

import os

from great_expectations.data_context.store.tuple_store_backend import TupleFilesystemStoreBackend
from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier

from expectations_custom.data_docs.results_store import fast_identifier


def page_tuples(backend) -> list[tuple[str, ...]]:
    """The key tuples of the site's pages, as ``backend.list_keys()`` returns them."""
    if (
        type(backend) is not TupleFilesystemStoreBackend
        or backend.filepath_template
        or not backend.filepath_prefix
    ):
        return backend.list_keys()
    suffix = backend.filepath_suffix or ""
    found: list[tuple[str, ...]] = []

    def walk(folder: str, parts: tuple[str, ...]) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):  # no page yet; a folder pruned meanwhile
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path, (*parts, entry.name))
            elif entry.name.endswith(suffix):
                key = (*parts, entry.name[: len(entry.name) - len(suffix)])
                if not backend.is_ignored_key(key):
                    found.append(key)

    walk(os.path.join(backend.full_base_directory, backend.filepath_prefix), ())
    return found


def page_identifiers(backend) -> list[ValidationResultIdentifier]:
    """The site's pages as the identifiers of their results (what GX's index builder lists)."""
    return [fast_identifier(t) or ValidationResultIdentifier.from_tuple(t) for t in page_tuples(backend)]
