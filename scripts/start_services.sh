#!/usr/bin/env bash
# Make sure the local PostgreSQL and MariaDB that the tests talk to are up (docs/design.md section 2),
# and Redis (the Celery rehearsal's broker, 127.0.0.1:6379).
# Starts them if they are not; waits until they answer; fails with one line if they never do.
set -uo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
maria_up() { mariadb-admin -h 127.0.0.1 -uroot --connect-timeout=2 ping >/dev/null 2>&1 \
             || mysqladmin -h 127.0.0.1 -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

# Headless Chromium renders the Data Docs in tests/test_data_docs_offline.py (Debian's package).
if ! command -v chromium >/dev/null; then
  echo "installing chromium (Debian package, once)..."
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
    || { echo "error: could not install chromium (needed by the Data Docs test)" >&2; exit 1; }
fi

if ! pg_up; then
  echo "starting PostgreSQL..."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
fi
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! command -v redis-server >/dev/null; then
  echo "installing redis (Debian package, once)..."
  (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) \
    || { echo "error: could not install redis-server (the Celery rehearsal's broker)" >&2; exit 1; }
fi
if ! redis_up; then
  echo "starting Redis..."
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes >/dev/null || true
fi
if ! maria_up; then
  echo "starting MariaDB..."
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 1 60); do
  pg_up && maria_up && redis_up && exit 0
  sleep 1
done
pg_up || echo "error: PostgreSQL is not answering on 127.0.0.1:5432" >&2
maria_up || echo "error: MariaDB is not answering on 127.0.0.1:3306" >&2
redis_up || echo "error: Redis is not answering on 127.0.0.1:6379" >&2
exit 1
