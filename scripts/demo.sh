#!/usr/bin/env bash
# `make demo`: the real nightly job, on the embedded default (SQLite files under .local/).
#
# A fresh Airflow (AIRFLOW_HOME=.local/airflow), the one-slot pool, synthetic data with known
# anomalies, then `airflow dags test` of the vacuum DAG and of the monitoring DAG, which FAILS
# on purpose (the data holds injected anomalies). Prints what a new user needs on one screen;
# the full Airflow logs are under .local/logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="$ROOT/.venv/bin/python"
AIRFLOW="$ROOT/.venv/bin/airflow"
LOGS="$ROOT/.local/logs"
MAIL="$ROOT/.local/mail"

fail() { echo "demo: error: $*" >&2; exit 1; }

export AIRFLOW_HOME="$ROOT/.local/airflow"
# shellcheck source=scripts/airflow_env.sh
source "$ROOT/scripts/airflow_env.sh"
# The demo's settings: the embedded SQLite default, whatever the caller's environment says.
for var in $(env | grep -o '^ORDER_TRACKING_[A-Z_]*'); do unset "$var"; done
export ORDER_TRACKING_DAG_RETRIES=0  # a demo should not sit out a 5-minute retry delay
# Source look-ups per type and run, set low on purpose: the 5th mismatch gets the verdict `unknown`.
export ORDER_TRACKING_SOURCE_CHECK_LIMIT=4
unset AIRFLOW_CONN_ORDER_TRACKING_REDSHIFT AIRFLOW_CONN_ORDER_TRACKING_MYSQL

rm -rf "$AIRFLOW_HOME" "$LOGS" "$MAIL" "$ROOT/.local/warehouse"*.db "$ROOT/.local/source"*.db
mkdir -p "$AIRFLOW_HOME" "$LOGS"  # not $MAIL: aiosmtpd creates the Maildir only if it is missing

# --- a local SMTP sink: every message lands in .local/mail (a Maildir) -----------------------
SMTP_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$MAIL" >"$LOGS/smtp.log" 2>&1 &
SMTP_PID=$!
trap 'kill "$SMTP_PID" 2>/dev/null' EXIT
export AIRFLOW_CONN_SMTP_DEFAULT="{\"conn_type\": \"smtp\", \"host\": \"127.0.0.1\", \"port\": $SMTP_PORT,
  \"extra\": {\"disable_ssl\": true, \"disable_tls\": true, \"from_email\": \"order-tracking-dq@localhost\"}}"

AS_OF=$(date -u +%Y-%m-%dT%H:00:00)
echo "== order tracking nightly job, demo (embedded SQLite, as of $AS_OF UTC)"

echo "-- 1. Airflow: fresh metadata DB in .local/airflow, pool redshift_vacuum (1 slot)"
"$AIRFLOW" db migrate >"$LOGS/airflow_db_migrate.log" 2>&1 || fail "airflow db migrate failed: see $LOGS/airflow_db_migrate.log"
"$AIRFLOW" pools set redshift_vacuum 1 "one Redshift VACUUM at a time" >"$LOGS/airflow_pool.log" 2>&1 \
  || fail "could not create the pool: see $LOGS/airflow_pool.log"

echo "-- 2. synthetic data: 20,000 orders with injected anomalies, and the source edited for each verdict"
"$PY" -m order_tracking seed --replace --quiet --verdict-cases --as-of "$AS_OF" --manifest .local/manifest.json \
  >"$LOGS/seed.log" 2>&1 || { cat "$LOGS/seed.log"; fail "seeding failed"; }
grep -E "injected|dropped|source verdict" "$LOGS/seed.log" | sed 's/^ */   /'

run_dag() {  # dag_id [airflow dags test options] -> runs it, prints the run's and each task's state
  local dag=$1 log="$LOGS/$1.log" started=$SECONDS
  shift
  AIRFLOW__LOGGING__LOGGING_LEVEL=INFO "$AIRFLOW" dags test "$dag" "$AS_OF" "$@" >"$log" 2>&1
  echo "   $dag finished in $((SECONDS - started)) s (full log: ${log#"$ROOT"/})"
  "$PY" - "$log" <<'EOF'
import re, sys

task, rows, run_state = None, {}, "unknown"
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if m := re.search(r"\[DAG TEST\] starting task_id=(\w+)", line):
        task = m.group(1)
        rows[task] = ["running", ""]
    elif task and (m := re.search(r"new_state=(\w+)", line)):
        rows[task][0] = m.group(1)
    elif task and (m := re.search(r"(?:AirflowFailException|RuntimeError|UserError): (.*)", line)):
        # the short reason: what failed, not the window and sample (those are in the log and email)
        rows[task][1] = re.split(r" in window |; failed checks|\. Data Docs", m.group(1))[0][:120]
    elif m := re.search(r"DagRun Finished: .*?state=(\w+)", line):
        run_state = m.group(1)
for name, (state, why) in rows.items():
    print(f"     {name:<28} {state:<8} {why}")
print(f"   run state: {run_state.upper()}")
EOF
}

echo "-- 3. airflow dags test order_tracking_vacuum"
run_dag order_tracking_vacuum
"$PY" - <<'EOF'
from order_tracking import db, schema
from order_tracking.settings import Settings
import sqlalchemy as sa

s = Settings.from_env()
engine = db.create_engine(s.warehouse_url, s.warehouse_schemas)
log = schema.build_tables(s).maintenance_log
with engine.connect() as conn:
    last = conn.execute(sa.select(sa.func.max(log.c.started_at))).scalar()
    run = conn.execute(sa.select(log.c.run_id).where(log.c.started_at == last)).scalar()
    rows = conn.execute(sa.select(log).where(log.c.run_id == run).order_by(log.c.started_at)).mappings().all()
print(f"     {'step':<44} {'status':<7} {'ghost rows':>10}   {'file size':>19}")
for r in rows:
    size = f"{r['size_before'] or 0:>9,} -> {r['size_after'] or 0:,}" if r["size_before"] is not None else "-"
    ghost = f"{r['ghost_rows_before']} -> {r['ghost_rows_after']}" if r["ghost_rows_before"] is not None else "-"
    print(f"     {r['operation'] + ' ' + r['table_name']:<44} {r['status']:<7} {ghost:>10}   {size:>19}")
engine.dispose()
EOF

echo "-- 4. airflow dags test order_tracking_daily_monitoring -c '{\"as_of\": \"$AS_OF\"}' (expected to FAIL: the data has anomalies)"
# as_of pins all four tests, Test 0 included, to the seeded night (the DAG's `as_of` run param).
run_dag order_tracking_daily_monitoring -c "{\"as_of\": \"$AS_OF\"}"

echo "-- 5. what was found, per type, against what the seed injected (.local/manifest.json)"
"$PY" - .local/manifest.json <<'EOF'
import json, sys

from order_tracking import db, schema
from order_tracking.checks import exceptions_store
from order_tracking.settings import EXCEPTION_TYPES, Settings

manifest = json.load(open(sys.argv[1]))
s = Settings.from_env()
engine = db.create_engine(s.warehouse_url, s.warehouse_schemas)
rows = exceptions_store.list_exceptions(engine, schema.build_tables(s))
engine.dispose()
for etype in EXCEPTION_TYPES:
    found = sorted(r.order_id for r in rows if r.exception_type == etype)
    injected = sorted(manifest["expected"][etype])
    verdict = "= injected" if found == injected else f"!= injected {injected}"
    print(f"     {etype:<31} {len(found):>2} open  {verdict}   e.g. {', '.join(map(str, found[:5]))}")
dropped = ", ".join(f"{t} {n}" for t, n in manifest["extraction_dropped"].items() if n)
print(f"     Test 0: raw rows the seed dropped: {dropped or 'none'} (Test 0's findings are in the email below)")
EOF
echo "   details: python -m order_tracking exceptions --type ORDER_MISSING_SPATH"

echo "-- 6. source verdicts: each open Test 1/2 finding looked up in the MySQL source, against what the seed set up"
"$PY" - .local/manifest.json <<'EOF'
import json, sys

import sqlalchemy as sa

from order_tracking import db, schema
from order_tracking.settings import Settings

cases = json.load(open(sys.argv[1]))["verdict_cases"]
expected = {(t, i): v for v, per_type in cases.items() for t, ids in per_type.items() for i in ids}
s = Settings.from_env()
engine = db.create_engine(s.warehouse_url, s.warehouse_schemas)
ex = schema.build_tables(s).exceptions
types = ["ORDER_MISSING_SPATH", "UTI_UTS_TIME_MISMATCH"]
with engine.connect() as conn:
    rows = conn.execute(
        sa.select(ex.c.order_id, ex.c.exception_type, ex.c.source_verdict, ex.c.source_detail)
        .where(ex.c.resolved_at.is_(None), ex.c.exception_type.in_(types))
        .order_by(ex.c.exception_type, ex.c.order_id)
    ).all()
engine.dispose()
for order_id, etype, verdict, detail in rows:
    setup = expected.get((etype, order_id))
    mark = "" if setup == verdict else f"  != set up: {setup}"
    print(f"     {order_id} {etype:<22} {verdict or 'none':<18} {(detail or '')[:100]}{mark}")
EOF
read -r FILL REFUSE < <("$PY" -c 'import json; c = json.load(open(".local/manifest.json"))["verdict_cases"]
print(c["in_source"]["ORDER_MISSING_SPATH"][0], c["missing_in_source"]["ORDER_MISSING_SPATH"][0])')

echo "-- 7. backfill, dry run (nothing changes): an in_source order, and a missing_in_source one (refused)"
echo "   \$ python -m order_tracking backfill --type ORDER_MISSING_SPATH --order-id $FILL --order-id $REFUSE --by demo"
"$PY" -m order_tracking backfill --type ORDER_MISSING_SPATH --order-id "$FILL" --order-id "$REFUSE" --by demo \
  2>&1 | sed 's/^/   | /'
echo "   exit code ${PIPESTATUS[0]} (1: an order was refused)"

echo "-- 8. backfill --apply of the in_source order: copied, re-checked with the rule, exception closed"
echo "   \$ python -m order_tracking backfill --type ORDER_MISSING_SPATH --order-id $FILL --by demo --apply"
"$PY" -m order_tracking backfill --type ORDER_MISSING_SPATH --order-id "$FILL" --by demo --apply 2>&1 \
  | grep -v -E '^(BEGIN|LOCK|DELETE|INSERT|UPDATE|COMMIT)' | sed 's/^/   | /'
echo "   exit code ${PIPESTATUS[0]} (0: backfilled and closed; the statements are those of the dry run)"

SITE="$ROOT/gx/uncommitted/data_docs/local_site"
echo "-- 9. Data Docs: file://$SITE/index.html"
[ -f "$SITE/health.html" ] && echo "   health over the last 30 nights (findings, open by age, Test 0, vacuum): file://$SITE/health.html"

echo "-- 10. the alert email Airflow sent (SMTP sink on 127.0.0.1:$SMTP_PORT, saved in .local/mail)"
sleep 0.5
"$PY" - "$MAIL" <<'EOF'
import email.policy, mailbox, sys

try:
    messages = list(mailbox.Maildir(sys.argv[1], factory=None, create=False))
except FileNotFoundError:
    messages = []
print(f"   {len(messages)} message(s)")
for raw in messages:
    msg = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
    kinds = [p.get_content_type() for p in msg.walk() if not p.is_multipart()]
    print(f"   To: {msg['To']}\n   Subject: {msg['Subject']}\n   Parts: {', '.join(kinds)}; the text part:")
    text = msg.get_body(preferencelist=("plain",))
    for line in (text.get_content() if text else "").splitlines():
        print(f"   | {line}")
EOF
echo "== done. The monitoring run failed because of the injected anomalies, as it should: each type comes"
echo "   with its next step and command, in the email and on its Data Docs page. Airflow logs: .local/logs/"
