"""The data changes of the memory, history and fixed-cost phases; the database ones are always undone."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarking.config import AS_OF, HISTORY_OFFSET
from benchmarking.database import vacuum_analyze

if TYPE_CHECKING:
    import sqlalchemy as sa

    from benchmarking.measures import Bench


def make_test1_findings(bench: Bench, n: int) -> None:
    """Move ``update_time`` of ``n`` orders from before the window into it (Test 1 mismatches).

    Only orders whose last event is less than 119 days old are picked: their spath rows are still
    in the mart (so Test 1 sees them) and their ecs row too (so Test 3 does not).
    """
    import sqlalchemy as sa

    uti = bench.tables.mart_uti
    backup = _backup_table(bench)
    start = AS_OF - timedelta(hours=bench.settings.dq_lookback_hours)
    picked = (
        sa.select(uti.c.order_id, uti.c.update_time)
        .where(uti.c.update_time <= start, uti.c.update_time > AS_OF - timedelta(days=119))
        .order_by(uti.c.order_id)
        .limit(n)
    )
    secs = sa.cast(sa.func.mod(uti.c.order_id, 86_000) + 1, sa.Integer)
    with bench.engine.begin() as conn:
        backup.drop(conn, checkfirst=True)
        backup.create(conn)
        conn.execute(backup.insert().from_select(["order_id", "update_time"], picked))
        conn.execute(
            uti.update()
            .where(uti.c.order_id == backup.c.order_id)
            .values(update_time=sa.literal(AS_OF) - sa.func.make_interval(0, 0, 0, 0, 0, 0, secs))
        )
    vacuum_analyze(bench.engine, [uti])


def restore_findings(bench: Bench) -> None:
    """Put back the ``update_time`` values ``make_test1_findings`` moved, and drop its backup."""
    import sqlalchemy as sa

    uti = bench.tables.mart_uti
    backup = _backup_table(bench)
    with bench.engine.begin() as conn:
        if sa.inspect(conn).has_table(backup.name, schema=backup.schema):
            conn.execute(
                uti.update()
                .where(uti.c.order_id == backup.c.order_id)
                .values(update_time=backup.c.update_time)
            )
            backup.drop(conn)
    vacuum_analyze(bench.engine, [uti])


def _backup_table(bench: Bench) -> sa.Table:
    import sqlalchemy as sa

    return sa.Table(
        "bench_uti_backup",
        sa.MetaData(),
        sa.Column("order_id", sa.BigInteger, primary_key=True),
        sa.Column("update_time", sa.DateTime),
        schema=bench.settings.mart_schema,
    )


def clear_exceptions(bench: Bench) -> None:
    """Empty the exceptions table: the phases that follow start with no open exception."""
    with bench.engine.begin() as conn:
        conn.execute(bench.tables.exceptions.delete())
    vacuum_analyze(bench.engine, [bench.tables.exceptions])


def grow_history(bench: Bench, factor: int) -> None:
    """Make every history table ``factor`` times as large with copies under far-away order ids."""
    import sqlalchemy as sa

    with bench.engine.begin() as conn:
        for t in bench.hist_tables:
            cols = [c.name for c in t.columns]
            for k in range(1, factor):
                src = sa.select(
                    *[(t.c[c] + k * HISTORY_OFFSET).label(c) if c == "order_id" else t.c[c] for c in cols]
                ).where(t.c.order_id < HISTORY_OFFSET)
                conn.execute(t.insert().from_select(cols, src))
    vacuum_analyze(bench.engine, bench.hist_tables)


def shrink_history(bench: Bench) -> None:
    """Drop the copies ``grow_history`` made."""
    with bench.engine.begin() as conn:
        for t in bench.hist_tables:
            conn.execute(t.delete().where(t.c.order_id >= HISTORY_OFFSET))
    vacuum_analyze(bench.engine, bench.hist_tables)


def fill_results_store(store: Path, total: int, per_night: int = 4, pages: Path | None = None) -> int:
    """Copy stored validation results under earlier run times until the store holds ``total``.

    The key is ``<suite>/<run name>/<run time>/<batch>.json``; the copies go back one night per
    ``per_night`` results (4 checks a night), as if the same checks had run every night before:
    1,460 results are a year of nights, and retention (``prune``) sees their real ages. With
    ``pages`` (the site's ``validations/`` folder) each copy gets its Data Docs page too, as a
    night's run leaves both. Returns how many results the store holds.
    """
    timed = {p: _run_time(p.parent.name) for p in store.glob("*/*/*/*.json")}
    timed = {p: t for p, t in timed.items() if t is not None}
    newest = max(timed.values(), default=None)
    # The copies are of the newest night's results and go on from the oldest night stored.
    originals = sorted(p for p, t in timed.items() if t.date() == newest.date()) if newest else []
    start = (newest.date() - min(timed.values()).date()).days if newest else 0
    held, i = stored_results(store), 0
    while held < total and originals:
        src = originals[i % len(originals)]
        run_time = timed[src] - timedelta(days=start + 1 + i // per_night)
        dest = src.parent.parent / run_time.strftime(GX_TIME) / src.name
        i += 1
        if dest.exists():  # fewer originals than a night's checks: the next night takes it
            continue
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dest)
        page = pages / src.relative_to(store).with_suffix(".html") if pages else None
        if page is not None and page.exists():
            page_dest = pages / dest.relative_to(store).with_suffix(".html")
            page_dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(page, page_dest)
        held += 1
    return held


GX_TIME = "%Y%m%dT%H%M%S.%fZ"  # RunIdentifier.to_tuple's run time


def _run_time(name: str) -> datetime | None:
    try:
        return datetime.strptime(name, GX_TIME)
    except ValueError:
        return None


def stored_results(store: Path) -> int:
    """How many validation results the store holds."""
    return len(list(store.glob("*/*/*/*.json")))
