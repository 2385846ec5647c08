"""Benchmark the nightly checks against the raw-SQL limit (issue 6): ``make bench``.

One run on PostgreSQL, on synthetic data (``order_tracking.synthetic``, 1M orders by default):

1. raw       the three rule queries (Tests 1-3) as plain ``SELECT COUNT(*)`` of the failing rows
2. stock     the same three rules through GX's stock ``UnexpectedRowsExpectation``, one checkpoint
             each (ephemeral context, SQL compiled with literal values)
3. validate  our three validation definitions, validation only (GX context already loaded)
4. full      ``monitoring.run_checks`` for Tests 1-3 as ``monitor`` runs them (validation,
             exceptions, Data Docs), context already loaded
5. memory    peak RSS of a whole ``monitor`` run in a child process with ~0.5% and ~50% of the
             orders failing Test 1 (5k and 500k findings at 1M orders)
6. history   (3) with 1x and 4x as many rows in the history tables
7. fixed     (4) over an empty window: what a run costs whatever the data (GX, Data Docs);
             again with the GX results store grown to 30 nights and to a year of stored results
             (copies of this run's), since the Data Docs index lists every stored result

Per check it also counts the rule scans (validation + write pass): 1 when validation fetched
every finding (``rules.SAMPLE_SIZE`` or fewer), 2 otherwise (``RuleScans``).

Each time is the median of ``--repeat`` rounds (9) after a warm-up round; a round runs raw, stock,
validate, full and fixed one after the other, so the ratios compare runs made under the same load,
and each round starts one kind later than the one before (``rounds``). The spread of the per-round
ratios is printed too: it shows how much a single round would have said.
The two ratio targets are judged from ``JUDGED_AT_ORDERS`` up (``--orders 3000000``); below, they
are printed but not judged: the fixed per-run cost (7) is the same whatever the data, so it
outweighs the margin in a smaller scan (at 1M, ~0.2 s against a 0.4 s raw scan). The exit status
is 1 when a judged target fails. Writes ``bench/results.json`` and ``bench/benchmark.png``. Uses
schemas of its own (``--mart-schema``/``--ods-schema``, replaced on every run) and a temporary copy
of ``gx/``, so neither the repository's Data Docs nor anyone's data are touched.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/bench"
AS_OF = datetime(2026, 1, 15, 3, 0)  # fixed: the same data and plans on every run
CHECKS = ("uti_uts_alignment", "missing_spath", "reactivated_missing_ecs")
HISTORY_OFFSET = 1_000_000_000  # order ids of the extra history rows: never in the window
FINDINGS_SMALL, FINDINGS_LARGE = 0.005, 0.5  # share of the orders made to fail Test 1
EMPTY_AS_OF = AS_OF - timedelta(days=400)  # synthetic orders span 200 days: an empty window
STORED_RESULTS = (("30 nights", 120), ("a year", 1460))  # 4 checks a night: the index limit, a year
DEFAULT_ORDERS = 1_000_000
JUDGED_AT_ORDERS = 3_000_000  # the ratio targets hold from this many orders up (see above)
RATIO_TARGETS = frozenset({"validate / raw", "full / raw"})
TARGETS = {
    "validate_over_raw": 1.10,
    "full_over_raw": 1.25,
    "rss_mb": 400.0,
    "rss_500k_minus_5k_mb": 50.0,
    "history_4x_over_1x": 1.3,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--orders",
        type=int,
        help=f"synthetic orders (default {DEFAULT_ORDERS:,}; with --no-seed, those already seeded)",
    )
    p.add_argument("--repeat", type=int, default=9, help="timed rounds after the warm-up (min 3)")
    p.add_argument("--mart-schema", default="bench_public", help="schema for the mart tables")
    p.add_argument("--ods-schema", default="bench_ods", help="schema for the exceptions table")
    p.add_argument("--out", type=Path, default=ROOT / "bench", help="where results.json/PNG go")
    p.add_argument("--no-seed", action="store_true", help="reuse the data of the previous run")
    p.add_argument("--child", choices=("startup", "full"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeat < 3:
        p.error("--repeat must be at least 3")
    if args.orders is not None and args.orders < 2_000:
        p.error("--orders must be at least 2000")
    return args


def configure_env(args: argparse.Namespace, gx_root: Path | None) -> str:
    """Point every ORDER_TRACKING_* setting at the benchmark's own database, schemas and gx copy."""
    url = os.environ.get("ORDER_TRACKING_WAREHOUSE_URL") or DEFAULT_URL
    os.environ["ORDER_TRACKING_WAREHOUSE_URL"] = url
    os.environ["ORDER_TRACKING_MART_SCHEMA"] = args.mart_schema
    os.environ["ORDER_TRACKING_ODS_SCHEMA"] = args.ods_schema
    for key in (
        "ORDER_TRACKING_SMTP_HOST",
        "ORDER_TRACKING_HIST_UTS_TABLES",
        "ORDER_TRACKING_DQ_LOOKBACK_HOURS",
    ):
        os.environ.pop(key, None)  # no email; discovered history; the spec's 24 h
    if gx_root is not None:
        os.environ["ORDER_TRACKING_GX_ROOT"] = str(gx_root)
    return url


# --- child processes ------------------------------------------------------------------------


def child(mode: str) -> None:
    """Run in a fresh interpreter; print one JSON line with what was measured."""
    t0 = time.perf_counter()
    from order_tracking import gx_project, monitoring
    from order_tracking.settings import Settings

    t1 = time.perf_counter()
    settings = Settings.from_env()
    context = gx_project.load(settings)
    t2 = time.perf_counter()
    out = {"import_s": t1 - t0, "load_s": t2 - t1}
    if mode == "full":
        gx_project.load = lambda _settings: context  # already loaded, timed above
        with RuleScans() as scans:
            report = monitoring.run_checks(settings, AS_OF, CHECKS)
        out["full_s"] = time.perf_counter() - t2
        out["rule_scans"] = scans.per_check
        out["outcomes"] = [(o.check, o.status, o.failing, o.new, o.already_open) for o in report.outcomes]
    out["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(out))


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` belongs to the address space made by exec; getrusage's
    ``ru_maxrss`` survives execve and would report the (bigger) parent's peak at fork time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(mode: str) -> tuple[dict, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode, *sys.argv[1:]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {mode!r} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


# --- the database ---------------------------------------------------------------------------


def seeded_orders(engine, uti, orders: int | None) -> int:
    """With ``--no-seed``: the orders already in the data (one ``uti`` row each)."""
    import sqlalchemy as sa

    name = f"{uti.schema}.{uti.name}"
    try:
        n = count_rows(engine, [uti])
    except sa.exc.ProgrammingError:
        raise SystemExit(f"--no-seed: no {name} to reuse; run without it") from None
    if orders is not None and orders != n:
        raise SystemExit(
            f"--orders {orders:,} but {name} holds {n:,} orders from an earlier run; "
            "drop --no-seed to seed again"
        )
    return n


def ensure_database(url: str) -> None:
    """CREATE DATABASE if the URL's database does not exist yet (PostgreSQL only)."""
    import sqlalchemy as sa

    from order_tracking import db

    parsed = db.parse_url(url, "warehouse")
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"the benchmark runs on PostgreSQL, not {parsed.get_backend_name()}")
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": parsed.database}
            )
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def vacuum_analyze(engine, tables) -> None:
    """What the nightly vacuum DAG leaves behind (visibility maps, planner statistics), on disk."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        prep = conn.dialect.identifier_preparer
        for t in tables:
            conn.exec_driver_sql(f"VACUUM ANALYZE {prep.format_table(t)}")
        # Flush the bulk writes now, not during the timed rounds that follow (without it, raw SQL
        # over 4x history timed 1.17-1.34x of 1x in two 1M runs; with it, 1.03-1.06x in two).
        conn.exec_driver_sql("CHECKPOINT")


def count_rows(engine, tables) -> int:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return sum(conn.scalar(sa.select(sa.func.count()).select_from(t)) for t in tables)


# --- measurements ---------------------------------------------------------------------------


class RuleScans:
    """How many statements ran each check's rule, counted from the SQL every engine sends.

    Every rule starts from ``mart_uni_tracking_info``, so a statement naming it is one scan of
    the rule. Validation sends one per check (it carries ``failing_count``) and opens that check's
    count; the write pass adds one when it stages the findings (more than ``rules.SAMPLE_SIZE``)
    and none when it writes the rows validation fetched. Checks run one after the other, so
    ``per_check`` lists the counts in run order. A SQLAlchemy event on the ``Engine`` class sees
    GX's engine as well as ours.
    """

    def __init__(self, marker: str = "mart_uni_tracking_info") -> None:
        self.marker = marker
        self.per_check: list[int] = []

    def __enter__(self) -> RuleScans:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.remove(Engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement: str, parameters, context, executemany) -> None:
        if self.marker not in statement:
            return
        if "failing_count" in statement or not self.per_check:
            self.per_check.append(0)
        self.per_check[-1] += 1


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Bench:
    """Everything the in-process measurements share: settings, engine, GX context, rule SQL."""

    def __init__(self, settings) -> None:
        from order_tracking import db, gx_project, schema

        self.settings = settings
        self.tables = schema.build_tables(settings)
        self.engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, "warehouse")
        t = time.perf_counter()
        self.context = gx_project.load(settings)
        self.load_s = time.perf_counter() - t
        self.as_of_param = {"as_of": AS_OF.isoformat()}
        self.rule_scans: list[int] = []  # per check, from the last full() at AS_OF
        self.refresh_rules()
        # The stock class prints a warning that the query lacks {batch} (it names its own tables).
        with contextlib.redirect_stdout(io.StringIO()):
            self.stock = self._stock_checkpoints()

    def refresh_rules(self) -> None:
        """The three rules as run on the current tables (history tables are discovered)."""
        from order_tracking import rules

        window = rules.Window.lookback(AS_OF, self.settings.dq_lookback_hours)
        with self.engine.connect() as conn:
            hist_uts = rules.hist_uts_tables(conn, self.tables, None)
            hist_ecs = rules.hist_ecs_tables(conn, self.tables)
        self.hist_tables = [*hist_uts, *hist_ecs]
        self.rules = [
            rules.uti_uts_time_mismatch(self.tables, window),
            rules.order_missing_spath(self.tables, window, hist_uts),
            rules.reactivated_order_missing_ecs(self.tables, window, hist_ecs),
        ]
        self.raw_sql = [rules.compile_sql(r.count(), self.engine.dialect) for r in self.rules]

    def _stock_checkpoints(self) -> list:
        """One checkpoint per rule with GX's own UnexpectedRowsExpectation, in a throwaway context."""
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from order_tracking import rules

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = context.data_sources.add_sql(name="bench", connection_string=self.settings.warehouse_url)
        batch = source.add_query_asset(name="window", query="SELECT 1 AS batch_marker")
        batch_definition = batch.add_batch_definition_whole_table("all")
        checkpoints = []
        for rule in self.rules:
            name = f"stock_{rule.exception_type.lower()}"
            # The rule's rows as literal SQL; GX wraps it in COUNT(*) and in a 200-row fetch.
            sql = rules.compile_sql(rule.select, self.engine.dialect)
            suite = context.suites.add(gx.ExpectationSuite(name=name))
            suite.add_expectation(gxe.UnexpectedRowsExpectation(unexpected_rows_query=sql))
            vd = context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
            )
            checkpoints.append(
                context.checkpoints.add(
                    gx.Checkpoint(
                        name=name, validation_definitions=[vd], result_format={"result_format": "SUMMARY"}
                    )
                )
            )
        return checkpoints

    # each returns per-check seconds
    def raw(self) -> list[float]:
        import sqlalchemy as sa

        out = []
        with self.engine.connect() as conn:
            for sql in self.raw_sql:
                out.append(timed(lambda sql=sql: conn.execute(sa.text(sql)).scalar()))
        return out

    def stock_run(self) -> list[float]:
        with contextlib.redirect_stdout(io.StringIO()):
            return [timed(lambda cp=cp: cp.run()) for cp in self.stock]

    def validate(self) -> list[float]:
        from order_tracking import gx_project

        out = []
        for check in CHECKS:
            name = gx_project.CHECKS[check].suite

            def run(name=name):
                result = self.context.validation_definitions.get(name).run(
                    expectation_parameters=self.as_of_param
                )
                for r in result.results:
                    if r.exception_info and r.exception_info.get("raised_exception"):
                        raise RuntimeError(f"{name}: {r.exception_info.get('exception_message')}")

            out.append(timed(run))
        return out

    def full(self, as_of: datetime = AS_OF) -> list[float]:
        from order_tracking import gx_project, monitoring

        loaded = gx_project.load
        gx_project.load = lambda _settings: self.context  # loaded once, outside the timing
        try:
            with RuleScans() as scans:
                start = time.perf_counter()
                report = monitoring.run_checks(self.settings, as_of, CHECKS)
                elapsed = time.perf_counter() - start
        finally:
            gx_project.load = loaded
        if as_of == AS_OF:
            self.rule_scans = scans.per_check
        errors = [f"{o.check}: {o.message}" for o in report.outcomes if o.status == "error"]
        if errors:
            raise SystemExit("monitor failed during the benchmark: " + "; ".join(errors))
        return [elapsed]


def rounds(repeat: int, kinds: dict[str, Callable[[], list[float]]]) -> dict[str, dict]:
    """Warm-up once, then ``repeat`` rounds of every kind; medians of totals and per check.

    Round ``i`` starts at the ``i``-th kind (raw, stock, validate ... then stock, validate, ...,
    raw): no kind always runs right after the same other one (stock scans twice what raw does),
    and each meets the machine's slow drifts at every place in the round. ``runs_s`` keeps the
    rounds in order, so ``runs_s[i]`` of two kinds were measured in the same round.
    """
    for fn in kinds.values():
        fn()
    order = list(kinds)
    samples: dict[str, list[list[float]]] = {k: [] for k in kinds}
    for i in range(repeat):
        start = i % len(order)
        for kind in order[start:] + order[:start]:
            samples[kind].append(kinds[kind]())
    out = {}
    for kind, runs in samples.items():
        out[kind] = {
            "median_s": statistics.median(sum(r) for r in runs),
            "per_check_s": [statistics.median(col) for col in zip(*runs, strict=True)],
            "runs_s": [round(sum(r), 4) for r in runs],
        }
    return out


# --- data changes for the memory and history phases (always undone) --------------------------


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


def _backup_table(bench: Bench):
    import sqlalchemy as sa

    return sa.Table(
        "bench_uti_backup",
        sa.MetaData(),
        sa.Column("order_id", sa.BigInteger, primary_key=True),
        sa.Column("update_time", sa.DateTime),
        schema=bench.settings.mart_schema,
    )


def clear_exceptions(bench: Bench) -> None:
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


def fill_results_store(store: Path, total: int) -> int:
    """Copy stored validation results under earlier run times until the store holds ``total``.

    The key is ``<suite>/<run name>/<run time>/<batch>.json``; each copy gets a run time whole
    days earlier, as if the same nights had run before. Returns how many results the store holds.
    """
    originals = sorted(store.glob("*/*/*/*.json"))
    held, day = len(originals), 0
    while held < total and originals:
        day += 1
        for src in originals[: total - held]:
            run_time = datetime.strptime(src.parent.name, "%Y%m%dT%H%M%S.%fZ") - timedelta(days=day)
            dest = src.parent.parent / run_time.strftime("%Y%m%dT%H%M%S.%fZ") / src.name
            dest.parent.mkdir(exist_ok=True)
            shutil.copyfile(src, dest)
            held += 1
    return held


def shrink_history(bench: Bench) -> None:
    with bench.engine.begin() as conn:
        for t in bench.hist_tables:
            conn.execute(t.delete().where(t.c.order_id >= HISTORY_OFFSET))
    vacuum_analyze(bench.engine, bench.hist_tables)


# --- report ---------------------------------------------------------------------------------


def machine_info(engine) -> dict:
    import sqlalchemy as sa

    with engine.connect() as conn:
        pg = conn.scalar(sa.text("SHOW server_version"))
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "postgresql": pg,
        "python": platform.python_version(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def round_ratios(kind: dict, raw: dict) -> list[float]:
    """``kind`` / raw round by round (the same round's two runs), lowest first."""
    return sorted(round(a / b, 3) for a, b in zip(kind["runs_s"], raw["runs_s"], strict=True))


def verdicts(r: dict) -> list[tuple[str, str, bool, bool]]:
    """(target, figure against it, met, judged at this run's scale) per target."""
    rss_max = max(r["rss_5k_mb"], r["rss_500k_mb"])
    growth = r["rss_500k_mb"] - r["rss_5k_mb"]
    at_scale = r["orders"] >= JUDGED_AT_ORDERS
    checks = [
        ("validate / raw", f"{r['validate_over_raw']:.2f} <= {TARGETS['validate_over_raw']}",
         r["validate_over_raw"] <= TARGETS["validate_over_raw"]),
        ("full / raw", f"{r['full_over_raw']:.2f} <= {TARGETS['full_over_raw']}",
         r["full_over_raw"] <= TARGETS["full_over_raw"]),
        ("peak RSS", f"{rss_max:.0f} MB <= {TARGETS['rss_mb']:.0f} MB", rss_max <= TARGETS["rss_mb"]),
        ("RSS 50% - 0.5%", f"{growth:+.0f} MB <= {TARGETS['rss_500k_minus_5k_mb']:.0f} MB",
         growth <= TARGETS["rss_500k_minus_5k_mb"]),
        ("history 4x / 1x", f"{r['history_4x_over_1x']:.2f} <= {TARGETS['history_4x_over_1x']}",
         r["history_4x_over_1x"] <= TARGETS["history_4x_over_1x"]),
    ]  # fmt: skip
    return [(name, text, ok, at_scale or name not in RATIO_TARGETS) for name, text, ok in checks]


def table_text(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"order-tracking benchmark  {m['date']}  {r['orders']:,} orders, {r['spath_rows']:,} spath rows, "
        f"{r['window_orders']:,} orders in the window",
        f"machine: {m['cores']} cores, PostgreSQL {m['postgresql']}, Python {m['python']}, "
        f"load avg {m['load_avg_start'][0]} at start / {m['load_avg_end'][0]} at end",
        f"process start-up + imports {r['startup_s']:.2f} s (imports {r['import_s']:.2f} s, "
        f"GX context load {r['context_load_s']:.2f} s); not in the figures below",
        "",
        f"{'measure (Tests 1-3)':<34}{'median s':>9}{'Test 1':>8}{'Test 2':>8}{'Test 3':>8}{'x raw':>7}",
    ]
    for key, label in (
        ("raw", "1 raw SQL COUNT(*)"),
        ("stock", "2 GX stock UnexpectedRows"),
        ("validate", "3 ours, validation only"),
        ("full", "4 ours, monitor (full)"),
        ("validate_4x", "6 ours, validation, 4x history"),
        ("fixed", "7 ours, monitor, empty window"),
    ):
        d = r["detail"][key]
        per = d["per_check_s"]
        cells = "".join(f"{x:>8.3f}" for x in per) if len(per) == 3 else f"{'':>24}"
        lines.append(f"{label:<34}{d['median_s']:>9.3f}{cells}{d['median_s'] / r['raw_s']:>7.2f}")

    def per_test(counts: list[int]) -> str:
        return ", ".join(f"Test {i}: {n}" for i, n in enumerate(counts, 1))

    lines += [
        "",
        f"fixed per-run cost (GX + Data Docs; monitor over an empty window): {r['fixed_s']:.3f} s; "
        f"monitor less that cost: {(r['full_s'] - r['fixed_s']) / r['raw_s']:.2f} x raw",
        "  the same with stored validation results of "
        + ", ".join(f"{f['label']} ({f['results']:,}): {f['median_s']:.3f} s" for f in r["fixed_stored"])
        + " (the Data Docs index lists them all)",
        "rule scans per check (validation + write; 1: validation fetched every finding, 2: staged):",
        f"  seeded data {per_test(r['rule_scans'])}; with {r['findings_5k']:,} findings "
        f"{per_test(r['rule_scans_5k'])}; with {r['findings_500k']:,} findings "
        f"{per_test(r['rule_scans_500k'])}",
        f"single rounds (of {r['repeat']}): validate / raw {_spread(r['validate_over_raw_rounds'])}, "
        f"monitor / raw {_spread(r['full_over_raw_rounds'])} (the medians above are what is judged)",
        f"stock / validate {r['stock_over_validate']:.2f} (what our one-scan expectation saves)",
        f"5 memory: peak RSS of monitor with {r['findings_5k']:,} findings {r['rss_5k_mb']:.0f} MB "
        f"({r['memory_full_5k_s']:.2f} s), with {r['findings_500k']:,} findings {r['rss_500k_mb']:.0f} MB "
        f"({r['memory_full_500k_s']:.2f} s)",
        f"6 history: raw {r['detail']['raw_4x']['median_s'] / r['detail']['raw_1x']['median_s']:.2f}x, "
        f"validate {r['history_4x_over_1x']:.2f}x with 4x history "
        f"({r['hist_rows_1x']:,} -> {r['hist_rows_4x']:,} history rows)",
        "",
    ]
    for name, text, ok, judged in verdicts(r):
        if judged:
            lines.append(f"{'PASS' if ok else 'FAIL'}  {name:<16} {text}")
        else:
            lines.append(
                f"----  {name:<16} {text}  not judged: targets hold from {JUDGED_AT_ORDERS:,} orders"
            )
    return "\n".join(lines)


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


def write_chart(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1.3]})
    labels = ["raw SQL", "GX stock", "ours:\nvalidate", "ours:\nmonitor", "validate\n4x history"]
    keys = ["raw", "stock", "validate", "full", "validate_4x"]
    values = [r["detail"][k]["median_s"] for k in keys]
    colors = ["#777777", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"]
    bars = ax1.bar(labels, values, color=colors)
    for bar, v in zip(bars, values, strict=True):
        ax1.annotate(f"{v:.2f} s\n{v / r['raw_s']:.2f}x", (bar.get_x() + bar.get_width() / 2, v),
                     ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax1.set_ylabel("seconds, Tests 1-3 (median)")
    ax1.set_ylim(0, max(values) * 1.3)
    ax1.set_title(f"{r['orders']:,} orders, {r['spath_rows']:,} spath rows")
    rss = [r["rss_5k_mb"], r["rss_500k_mb"]]
    bars = ax2.bar([f"{r['findings_5k']:,}\nfindings", f"{r['findings_500k']:,}\nfindings"], rss,
                   color=["#1f77b4", "#ff7f0e"])  # fmt: skip
    for bar, v in zip(bars, rss, strict=True):
        ax2.annotate(
            f"{v:.0f} MB", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=8
        )
    ax2.axhline(TARGETS["rss_mb"], color="#d62728", linestyle="--", linewidth=1)
    ax2.set_ylim(0, TARGETS["rss_mb"] * 1.15)
    ax2.set_ylabel("peak RSS of monitor, MB")
    ax2.set_title("memory")
    m = r["machine"]
    title = f"order-tracking monitor benchmark, {m['date']}, {m['cores']} cores, PostgreSQL {m['postgresql']}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        configure_env(args, None)  # the parent already set the gx copy
        child(args.child)
        return 0

    gx_tmp = Path(tempfile.mkdtemp(prefix="ot-bench-gx-"))
    try:
        shutil.copytree(ROOT / "gx", gx_tmp / "gx", ignore=shutil.ignore_patterns("uncommitted"))
        url = configure_env(args, gx_tmp / "gx")
        return run(args, url)
    finally:
        shutil.rmtree(gx_tmp, ignore_errors=True)


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, url: str) -> int:
    from order_tracking import db, schema, synthetic
    from order_tracking.settings import Settings

    ensure_database(url)
    settings = Settings.from_env()
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, "warehouse")
    if args.no_seed:
        args.orders = seeded_orders(engine, schema.build_tables(settings).mart_uti, args.orders)
    elif args.orders is None:
        args.orders = DEFAULT_ORDERS
    results: dict = {"orders": args.orders, "repeat": args.repeat, "machine": machine_info(engine)}
    if not args.no_seed:
        log(f"seeding {args.orders:,} orders into {db.redact(url)} ({args.mart_schema}, {args.ods_schema})")
        config = synthetic.SeedConfig(as_of=AS_OF, orders=args.orders, skip_source=True, replace=True)
        synthetic.seed(settings, config, engine)
    engine.dispose()

    startup, wall = run_child("startup")
    results.update(startup_s=wall, import_s=startup["import_s"], context_load_s=startup["load_s"])

    bench = Bench(settings)
    tables = bench.tables
    uts_tables = [tables.mart_uts, *[t for t in bench.hist_tables if t.name.startswith("hist_uni")]]
    vacuum_analyze(bench.engine, [tables.mart_uti, tables.mart_uts, tables.mart_ecs, *bench.hist_tables])
    clear_exceptions(bench)
    results["spath_rows"] = count_rows(bench.engine, uts_tables)
    with bench.engine.connect() as conn:
        import sqlalchemy as sa

        uti = tables.mart_uti
        start = AS_OF - timedelta(hours=settings.dq_lookback_hours)
        results["window_orders"] = conn.scalar(
            sa.select(sa.func.count()).where(uti.c.update_time > start, uti.c.update_time <= AS_OF)
        )

    log("timing raw / stock / validate / full")
    detail = rounds(
        args.repeat,
        {
            "raw": bench.raw,
            "stock": bench.stock_run,
            "validate": bench.validate,
            "full": bench.full,
            "fixed": lambda: bench.full(EMPTY_AS_OF),
        },
    )
    results["rule_scans"] = bench.rule_scans

    log("history: 1x then 4x")
    hist_kinds = {"raw": bench.raw, "validate": bench.validate}
    one = rounds(args.repeat, hist_kinds)
    results["hist_rows_1x"] = count_rows(bench.engine, bench.hist_tables)
    grow_history(bench, 4)
    try:
        results["hist_rows_4x"] = count_rows(bench.engine, bench.hist_tables)
        four = rounds(args.repeat, hist_kinds)
    finally:
        shrink_history(bench)
    detail.update(
        raw_1x=one["raw"], validate_1x=one["validate"], raw_4x=four["raw"], validate_4x=four["validate"]
    )

    for share, key in ((FINDINGS_SMALL, "5k"), (FINDINGS_LARGE, "500k")):
        n = int(args.orders * share)
        log(f"memory: monitor in a child process with {n:,} extra Test 1 findings")
        clear_exceptions(bench)
        make_test1_findings(bench, n)
        try:
            out, _ = run_child("full")
        finally:
            restore_findings(bench)
        results[f"rss_{key}_mb"] = out["maxrss_mb"]
        results[f"memory_full_{key}_s"] = out["full_s"]
        results[f"findings_{key}"] = sum(o[2] or 0 for o in out["outcomes"])
        results[f"memory_outcomes_{key}"] = out["outcomes"]
        results[f"rule_scans_{key}"] = out["rule_scans"]

    # Last: the memory children above ran on the store as the timed rounds left it. Their findings
    # go first (1.5M open exceptions at 3M orders made this fixed cost 1.1 s: a state of its own).
    clear_exceptions(bench)
    store = Path(bench.context.validation_results_store.store_backend.full_base_directory)
    results["fixed_stored"] = []
    for label, total in STORED_RESULTS:
        held = fill_results_store(store, total)
        if held > total:  # the timed rounds alone stored more (9 rounds: 156)
            label = "this run's own"
        log(f"fixed cost with {held:,} stored validation results ({label})")
        timing = rounds(args.repeat, {"fixed": lambda: bench.full(EMPTY_AS_OF)})["fixed"]
        results["fixed_stored"].append({"label": label, "results": held, "median_s": timing["median_s"]})
    bench.engine.dispose()

    results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["detail"] = detail
    results.update(
        raw_s=detail["raw"]["median_s"],
        stock_s=detail["stock"]["median_s"],
        validate_s=detail["validate"]["median_s"],
        full_s=detail["full"]["median_s"],
        fixed_s=detail["fixed"]["median_s"],
    )
    results["validate_over_raw"] = results["validate_s"] / results["raw_s"]
    results["full_over_raw"] = results["full_s"] / results["raw_s"]
    results["stock_over_validate"] = results["stock_s"] / results["validate_s"]
    for kind in ("validate", "full"):
        results[f"{kind}_over_raw_rounds"] = round_ratios(detail[kind], detail["raw"])
    results["history_4x_over_1x"] = detail["validate_4x"]["median_s"] / detail["validate_1x"]["median_s"]
    results["targets"] = {
        name: {"value": text, "pass": ok, "judged": judged} for name, text, ok, judged in verdicts(results)
    }

    text = table_text(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    write_chart(results, args.out / "benchmark.png")
    log(f"wrote {args.out / 'results.json'} and {args.out / 'benchmark.png'}")
    return 0 if all(t["pass"] for t in results["targets"].values() if t["judged"]) else 1


if __name__ == "__main__":
    sys.exit(main())
