"""Results kept for a set time: GX validation results and their Data Docs pages older than
``ORDER_TRACKING_KEEP_DAYS`` are removed, from the local folders or from the shared bucket.

Every night adds four results and four pages; kept forever they made every run's Data Docs build
slower (the index lists the whole results store) and the bucket larger (issue 25). The age of an
entry is the GX run time in its key (``<suite>/<run name>/<run time>/<batch>.json``, the run time
in GX's fixed UTC form), never a file date: a copied or restored file keeps its age.

Only those two trees are touched: GX's static files, the suite pages, the index and health page,
and everything in the warehouse (the exceptions table, the maintenance log) are never read or
removed here. The index lists what the results store holds, so the next Data Docs build drops
the removed runs from it (``monitor`` prunes before it builds; ``prune`` rebuilds the index).

The oldest go first, in batches, and a ``budget_secs`` stops between batches (``monitor``): what
is left is removed by the next run, and the result says how many.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from order_tracking.settings import DATA_DOCS_PREFIX, VALIDATIONS_PREFIX, S3Location, Settings

# RunIdentifier.to_tuple's run time, "%Y%m%dT%H%M%S.%fZ" (UTC): a path component that is one.
RUN_TIME = re.compile(r"\d{8}T\d{6}\.\d{6}Z")
GX_TIME = "%Y%m%dT%H%M%S.%fZ"
RESULT, PAGE = "result", "page"
S3_DELETE_MAX = 1000  # DeleteObjects takes at most 1000 keys a request
BATCH = 500  # entries removed between two looks at the clock


@dataclass(frozen=True, order=True)
class Entry:
    """One stored validation result or Data Docs page and its GX run time."""

    run_time: str  # GX's fixed-width UTC form: compares as the times do
    kind: str  # RESULT | PAGE
    name: str  # a local path or an object key


def is_old(name: str, cutoff: str) -> bool:
    """``name`` is a GX run time before ``cutoff`` (both GX's fixed-width form; anything that is not
    a run time is left alone). Compared as text: no date is parsed for the nights that stay."""
    return name < cutoff and RUN_TIME.fullmatch(name) is not None


class Store(Protocol):
    where: str

    def old_entries(self, cutoff: str) -> Iterator[Entry]: ...

    def delete(self, batch: Sequence[Entry]) -> None: ...


class LocalStore:
    """``gx/uncommitted/validations/`` and the local site's ``validations/`` pages."""

    def __init__(self, results: Path, pages: Path) -> None:
        self.trees = {RESULT: results, PAGE: pages}
        self.where = str(results.parent)

    def old_entries(self, cutoff: str) -> Iterator[Entry]:
        # Only the run-time folders' names are read (os.scandir, no stat); the files of the
        # old ones alone are listed: the nightly cost is one folder listing per run name.
        for kind, root in self.trees.items():
            for folder in _folders(root):
                if is_old(folder.name, cutoff):
                    yield from (Entry(folder.name, kind, f.path) for f in os.scandir(folder.path))

    def delete(self, batch: Sequence[Entry]) -> None:
        folders = set()
        for entry in batch:
            Path(entry.name).unlink(missing_ok=True)
            folders.add(Path(entry.name).parent)
        for folder in folders:  # the run time's folder, then the run name's, when left empty
            for empty in (folder, folder.parent):
                try:
                    empty.rmdir()
                except OSError:  # not empty (another batch, another run time): kept
                    break


def _folders(root: Path) -> Iterator[os.DirEntry]:
    """Every folder under ``root`` (GX's run-time folders are the deepest), without a stat each."""
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield entry
            if not RUN_TIME.fullmatch(entry.name):  # a run time's folder holds files only
                yield from _folders(Path(entry.path))


class S3Store:
    """``<prefix>/validations/`` and ``<prefix>/data_docs/validations/`` in the shared bucket."""

    def __init__(self, location: S3Location, endpoint_url: str | None) -> None:
        from order_tracking.stores import s3

        self.location, self.endpoint_url = location, endpoint_url
        self.client = s3.client(endpoint_url)
        self.prefixes = {
            RESULT: location.key(VALIDATIONS_PREFIX) + "/",
            PAGE: location.key(DATA_DOCS_PREFIX, "validations") + "/",
        }
        self.where = location.url

    def old_entries(self, cutoff: str) -> Iterator[Entry]:
        for kind, prefix in self.prefixes.items():
            pages = self._guarded(
                lambda prefix=prefix: list(
                    self.client.get_paginator("list_objects_v2").paginate(
                        Bucket=self.location.bucket, Prefix=prefix
                    )
                )
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    parts = obj["Key"].rsplit("/", 2)
                    if len(parts) == 3 and is_old(parts[1], cutoff):
                        yield Entry(parts[1], kind, obj["Key"])

    def delete(self, batch: Sequence[Entry]) -> None:
        for start in range(0, len(batch), S3_DELETE_MAX):
            keys = [{"Key": e.name} for e in batch[start : start + S3_DELETE_MAX]]
            answer = self._guarded(
                lambda keys=keys: self.client.delete_objects(
                    Bucket=self.location.bucket, Delete={"Objects": keys, "Quiet": True}
                )
            )
            failed = answer.get("Errors") or []
            if failed:
                first = failed[0]
                raise self._unavailable(
                    f"{len(failed)} object(s) not removed, e.g. {first.get('Key')}: {first.get('Code')}"
                )

    def _guarded(self, call: Callable):
        from botocore.exceptions import BotoCoreError, ClientError

        from order_tracking.errors import StoreUnavailable
        from order_tracking.stores import s3

        try:
            return call()
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable(s3.describe_error(exc, self.location, self.endpoint_url)) from None

    def _unavailable(self, what: str) -> Exception:
        from order_tracking.errors import StoreUnavailable

        return StoreUnavailable(f"GX store {self.location.url}: {what}")


def store_for(settings: Settings) -> Store:
    """The stores this run's settings name: the bucket, or the local folders under ``gx/``."""
    if settings.gx_store is not None:
        return S3Store(settings.gx_store, settings.s3_endpoint_url)
    return LocalStore(
        settings.gx_root / "uncommitted" / VALIDATIONS_PREFIX,
        settings.data_docs_index.parent / "validations",
    )


@dataclass(frozen=True)
class PruneResult:
    keep_days: int
    cutoff: datetime
    where: str
    results: int  # removed (or, dry run, to remove)
    pages: int
    left: int = 0  # older than the cutoff but left for the next run (the time budget ran out)
    dry_run: bool = False

    @property
    def removed(self) -> int:
        return self.results + self.pages

    def line(self) -> str:
        """What was done, in one line (the CLI prints it; ``monitor`` logs it)."""
        verb = "would remove" if self.dry_run else "removed"
        text = (
            f"prune: {verb} {self.results} validation result(s) and {self.pages} Data Docs page(s) "
            f"older than {self.keep_days} days (run before {self.cutoff:%Y-%m-%d %H:%M} UTC) "
            f"from {self.where}"
        )
        if self.left:
            text += f"; time budget used up: {self.left} older entries left for the next run"
        return text


def prune(
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
    budget_secs: float | None = None,
    batch_size: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    store: Store | None = None,
) -> PruneResult:
    """Remove the results and pages whose run time is more than ``settings.keep_days`` before
    ``now`` (naive UTC), oldest first.

    ``budget_secs``: stop between batches once this much time has gone (the first batch always
    goes, so every run makes progress). Raises ``StoreUnavailable`` (one line) when the bucket
    fails; what was removed before stays removed.
    """
    store = store or store_for(settings)
    batch_size = batch_size or BATCH
    started = clock()
    cutoff = now - timedelta(days=settings.keep_days)
    old = sorted(store.old_entries(cutoff.strftime(GX_TIME)))
    done: list[Entry] = []
    if not dry_run:
        for start in range(0, len(old), batch_size):
            if start and budget_secs is not None and clock() - started >= budget_secs:
                break
            batch = old[start : start + batch_size]
            store.delete(batch)
            done += batch
    else:
        done = old
    results = sum(1 for e in done if e.kind == RESULT)
    return PruneResult(
        settings.keep_days, cutoff, store.where, results, len(done) - results, len(old) - len(done), dry_run
    )
