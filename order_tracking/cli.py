"""``python -m order_tracking``: the command line.

Each subcommand lives in ``order_tracking/commands/<name>.py`` with a ``register(subparsers)``
function; this module only wires them and turns errors into one line and an exit code:
0 success, 1 unresolved exceptions remain (``monitor``), 2 extraction count alarm (``monitor``),
3 any other error (bad input, unreachable server, usage).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

import sqlalchemy as sa

from order_tracking.errors import UserError

EXIT_ERROR = 3
# The packages whose DEBUG lines -v shows (this project's own code).
OWN_LOGGERS = ("order_tracking", "expectations_custom")

COMMAND_MODULES = (
    "order_tracking.commands.init_db",
    "order_tracking.commands.exceptions",
    "order_tracking.commands.resolve",
    "order_tracking.commands.vacuum",
    "order_tracking.commands.seed",
    "order_tracking.commands.monitor",
    "order_tracking.commands.prune",
    "order_tracking.commands.repair",
    "order_tracking.commands.backfill",
    "order_tracking.commands.doctor",
    "order_tracking.commands.airflow_setup",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors share the "other error" code
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for, not on every run."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, help="show the version"
        )

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from order_tracking import DISTRIBUTION, package_version

        print(f"{DISTRIBUTION} {package_version()}")  # stdout, as argparse's own version action
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m order_tracking",
        description="Order Tracking data quality & vacuum: checks, exceptions, maintenance.",
    )
    parser.add_argument(
        "--warehouse-url",
        help="SQLAlchemy URL of the warehouse (Redshift/PostgreSQL/SQLite); "
        "default $ORDER_TRACKING_WAREHOUSE_URL, else the embedded SQLite under .local/",
    )
    parser.add_argument(
        "--source-url",
        help="SQLAlchemy URL of the MySQL source; default $ORDER_TRACKING_SOURCE_URL, "
        "else the embedded SQLite under .local/",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log our progress to stderr (libraries stay at WARNING)"
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Libraries (GX, botocore, urllib3, SQLAlchemy ...) stay at WARNING even with -v: their DEBUG
    # is thousands of lines a run, botocore's with the SigV4 Authorization header (issue 28).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose:
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG)
    else:
        # GX logs full tracebacks for problems we already report in one line (exit 3);
        # --verbose shows them.
        logging.getLogger("great_expectations").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except sa.exc.DBAPIError as exc:
        from order_tracking.db import short_reason

        print(f"error: database error: {short_reason(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `... | head` closed our stdout: not an error of ours, and no traceback.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_ERROR
