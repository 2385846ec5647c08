"""``seed``: load synthetic order-tracking data with known anomalies and write its manifest."""

from __future__ import annotations

import argparse

from order_tracking import schema, synthetic
from order_tracking.clock import utc_now
from order_tracking.commands.common import as_of_arg, settings_from, source_engine, warehouse_engine
from order_tracking.errors import UserError
from order_tracking.synthetic import verdict_cases

DEFAULT_MANIFEST = ".local/manifest.json"


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be 0 or more")
    return number


def _positive(value: str) -> int:
    number = _count(value)
    if number == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "seed",
        help="load synthetic orders with known anomalies (local and test databases only)",
        description="Generate realistic order-tracking data for --as-of (orders over ~200 days, 3-12 "
        "spath events each, history tables, raw copies of the last 6 hours, the MySQL source) with a "
        "known number of each anomaly and the traps that must not be flagged, load it, and write a "
        "JSON manifest of what the checks must find. Deterministic for --random-seed. Refuses tables "
        "that already hold rows unless --replace, and refuses Redshift outright.",
    )
    p.add_argument("--orders", type=_positive, default=20_000, metavar="N", help="orders (default 20000)")
    p.add_argument("--random-seed", type=_count, default=42, metavar="S", help="random seed (default 42)")
    p.add_argument(
        "--as-of",
        type=as_of_arg,
        default=None,
        metavar="TS",
        help="end of the checked window, ISO 8601, UTC if no offset (default: now)",
    )
    p.add_argument(
        "--manifest",
        default=DEFAULT_MANIFEST,
        metavar="PATH",
        help=f"where to write the manifest JSON (default {DEFAULT_MANIFEST})",
    )
    p.add_argument("--mismatch", type=_count, default=5, metavar="N", help="UTI_UTS_TIME_MISMATCH orders (5)")
    p.add_argument(
        "--missing-spath", type=_count, default=4, metavar="N", help="ORDER_MISSING_SPATH orders (4)"
    )
    p.add_argument(
        "--reactivated", type=_count, default=3, metavar="N", help="REACTIVATED_ORDER_MISSING_ECS orders (3)"
    )
    p.add_argument(
        "--dropped-raw",
        type=_count,
        default=2,
        metavar="N",
        help="raw rows dropped inside the Test 0 window, per table ecs and spath (2)",
    )
    p.add_argument("--clean", action="store_true", help="inject no anomaly (traps stay: none is a finding)")
    p.add_argument("--skip-source", action="store_true", help="do not load the MySQL source (benchmarks)")
    p.add_argument(
        "--replace",
        action="store_true",
        help="delete the rows of the synthetic tables first (the exceptions tables are never touched)",
    )
    p.add_argument(
        "--verdict-cases",
        action="store_true",
        help="then edit the source so that Tests 1-2 findings carry each source verdict (the demo; "
        "listed in the manifest under verdict_cases)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    synthetic.refuse_production(settings.warehouse_url, "warehouse")
    config = synthetic.SeedConfig(
        as_of=args.as_of or utc_now(),
        orders=args.orders,
        seed=args.random_seed,
        mismatch=args.mismatch,
        missing_spath=args.missing_spath,
        reactivated=args.reactivated,
        dropped_raw=args.dropped_raw,
        skip_source=args.skip_source,
        replace=args.replace,
    )
    if args.clean:
        config = config.clean()
    warehouse = warehouse_engine(settings)
    source = None
    if not args.skip_source:
        synthetic.refuse_production(settings.source_url, "source")
        source = source_engine(settings)
    progress = None if args.quiet else synthetic.stderr_progress()
    manifest = synthetic.seed(settings, config, warehouse, source, progress=progress)
    if args.verdict_cases:
        if source is None:
            raise UserError("--verdict-cases edits the source: it cannot go with --skip-source")
        manifest["verdict_cases"] = verdict_cases.inject(source, schema.build_tables(settings), manifest)
    path = synthetic.write_manifest(manifest, args.manifest)

    print(f"seeded {manifest['orders']:,} orders as of {manifest['as_of']} (seed {manifest['seed']})")
    if manifest["replaced"]:
        print(f"replaced the rows of {len(manifest['replaced'])} tables (exceptions kept)")
    for role, schema_name in (("warehouse", settings.mart_schema), ("source", settings.source_schema)):
        for name, rows in sorted(manifest["counts"][role].items()):
            print(f"  {schema_name}.{name}: {rows:,} rows")
    for kind, ids in manifest["expected"].items():
        print(f"  injected {kind}: {len(ids)}")
    dropped = ", ".join(f"{t} {n}" for t, n in manifest["extraction_dropped"].items())
    print(f"  raw rows dropped in the Test 0 window: {dropped}")
    for verdict, per_type in manifest.get("verdict_cases", {}).items():
        cases = "; ".join(f"{t} {', '.join(map(str, ids))}" for t, ids in per_type.items() if ids)
        print(f"  source verdict {verdict}: {cases}")
    print(f"manifest: {path}")
    return 0
