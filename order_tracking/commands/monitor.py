"""``monitor``: run the nightly checks through their GX checkpoints and print what they found."""

from __future__ import annotations

import argparse
import sys

from order_tracking.alerts import follow_up_text
from order_tracking.checks import lost_rows
from order_tracking.checks.run import CHECK_NAMES, MonitorReport, parse_checks, run_checks
from order_tracking.clock import utc_now
from order_tracking.commands.common import as_of_arg, settings_from
from order_tracking.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="run the data quality checks (Tests 0-3) and write exceptions",
        description="Run the GX checkpoints for the spec's Tests 0-3 over the window ending at "
        "--as-of, write findings to settlement_ods.order_tracking_exceptions, update Data Docs. "
        "Exit 0: no unresolved exceptions; 1: unresolved exceptions remain; 2: the extraction "
        "count alarm fired (Test 0); 3: any other error.",
    )
    p.add_argument("--as-of", type=as_of_arg, help="end of the window, ISO 8601 UTC (default: now)")
    p.add_argument(
        "--checks",
        default=",".join(CHECK_NAMES),
        help=f"comma-separated subset of {','.join(CHECK_NAMES)} (default: all)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.checks.strip(" ,"):  # an empty list is a mistake, not "all checks"
        raise UserError(f"--checks is empty; give a comma-separated subset of {','.join(CHECK_NAMES)}")
    checks = parse_checks(args.checks)
    settings = settings_from(args)
    as_of = args.as_of or utc_now()
    report = run_checks(settings, as_of, checks)
    print_report(report)
    if report.email_error:
        # Not in the exit code: the email goes out only when the run already exits non-zero
        # (1/2/3), and turning 1 or 2 into 3 would hide what the checks found.
        print(f"error: alert email not sent: {report.email_error}", file=sys.stderr)
    return report.exit_code()


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _found(check: str, count: int | None) -> str:
    """The count with what it counts: Test 0 counts raw tables short of the source, not orders."""
    if count is None:
        return "-"
    noun = "table" if check == "extraction_count" else "order"
    return f"{count} {noun}{'' if count == 1 else 's'}"


def print_report(report: MonitorReport) -> None:
    print(f"as_of {report.as_of.isoformat(sep=' ')} UTC")
    header = ("check", "status", "found", "new", "already open", "sample order ids")
    rows = [
        (
            o.check,
            o.status.upper(),
            _found(o.check, o.failing),
            _cell(o.new),
            _cell(o.already_open),
            ", ".join(o.sample_ids[:5]) + (" ..." if (o.failing or 0) > 5 else ""),
        )
        for o in report.outcomes
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for o in report.outcomes:
        if o.skipped_null_order_ids:
            n = o.skipped_null_order_ids
            print(f"{o.check}: {n} row{'s' if n != 1 else ''} with NULL order_id skipped (not written)")
        for line in follow_up_text.lines(o.details.get("follow_up")):  # issue 23
            print(f"{o.exception_type}: {line}")
        if o.status == "error":
            print(f"error in {o.check}: {o.message}", file=sys.stderr)
        elif o.check == "extraction_count" and o.status == "fail":
            short = ", ".join(
                f"{r['table_name']} source={r['source_count']} raw={r['raw_count']}" for r in o.sample
            )
            print(f"EXTRACTION COUNT ALARM: {short}; check extraction logs and Redshift COPY errors")
            for line in lost_rows.summary_lines(o.details):
                print(line)
    if report.unresolved is None:  # an error is never reported as "0"
        print("unresolved exceptions: unknown (the exceptions table could not be read; see the error)")
    else:
        total = sum(report.unresolved.values())
        parts = ", ".join(f"{t}={n}" for t, n in report.unresolved.items())
        print(f"unresolved exceptions: {total}" + (f" ({parts})" if parts else ""))
    if report.data_docs_index:  # None: not rebuilt, and the error line says so
        print(f"Data Docs: {report.data_docs_index}")
