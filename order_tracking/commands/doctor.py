"""``doctor``: preflight of the deployment target (privileges, tables, VACUUM rights); writes nothing."""

from __future__ import annotations

import argparse

from order_tracking import db
from order_tracking.commands.common import settings_from
from order_tracking.errors import UserError
from order_tracking.reports import doctor


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the warehouse and source before a deployment: access, tables, grants, VACUUM rights",
        description="One line per check (OK / WARN / FAIL), each failure with the exact GRANT or "
        "statement that fixes it. Reads the catalogs only; writes nothing. Exit 1 if any check fails.",
    )
    p.add_argument("--skip-source", action="store_true", help="check the warehouse only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    checks = []
    targets = [("warehouse", settings.warehouse_url, settings.warehouse_schemas, doctor.warehouse_checks)]
    if not args.skip_source:
        targets.append(("source", settings.source_url, [settings.source_schema], doctor.source_checks))
    for role, url, schemas, run_checks in targets:
        try:  # a preflight writes nothing: a missing embedded database is a finding, not created
            db.require_database(url, schemas, role)
        except UserError as exc:
            checks.append(doctor.Check(doctor.FAIL, f"{role}: {exc}"))
            continue
        engine = db.create_engine(url, schemas, role=role, timeouts=settings.timeouts)
        try:
            checks += run_checks(engine, settings)
        finally:
            engine.dispose()
    for check in checks:
        print(check.line())
    failed = doctor.failed(checks)
    print(f"{len(checks)} checks: {len(failed)} failed" + ("" if failed else "; ready"))
    return 1 if failed else 0
