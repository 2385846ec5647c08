"""The Redshift twin's system views and its VACUUM/ANALYZE: what Redshift shows and hides.

Modelled (PostgreSQL 15 underneath; each item says what it is built from):

- ``svv_table_info``: visible only to superusers unless ``GRANT SELECT ON svv_table_info TO <user>``
  (an explicit grant to the user or a role of theirs; anyone else reads it without an error and
  gets no rows, as on Redshift). It omits empty tables (no live and no dead rows). ``tbl_rows``
  counts deleted-not-reclaimed rows too (``n_live_tup + n_dead_tup``);
  ``estimated_visible_rows`` is ``n_live_tup``. ``stats_off`` is modelled from what PostgreSQL
  observes: ``100 * n_mod_since_analyze / max(n_live_tup, 1)``, capped at 100, so it drops to 0
  after an ANALYZE that ran. ``unsorted`` is what the test sets in ``table_state`` (PostgreSQL
  keeps no sort order to measure); a completed Sort/Full vacuum sets it back to 0.
- ``sys_vacuum_history``: one row per VACUUM the twin ran, of its own kind (Delete, Sort, Full,
  Reindex, Recluster), ``is_automatic`` false, status from ``table_state.vacuum_status`` (default
  'Complete'; a test may set 'Skipped' or 'Failed', or ``NO_ROW``: then nothing is vacuumed), plus
  PostgreSQL's autovacuums as ``is_automatic`` rows. Regular users see only their own rows, superusers all.
  Tests may insert rows of their own (``is_automatic`` ones) into ``vacuum_log``.
- ``sys_analyze_history`` (superusers only): one row per ANALYZE the twin ran, status 'Full' or
  'PredicateColumn', or 'Skipped' when the test sets ``table_state.analyze_status`` (then nothing
  is analyzed).
- Who may VACUUM/ANALYZE (``may_maintain``): a superuser, the table owner, or a user granted the
  VACUUM / ANALYZE system permission (``system_privileges``, shown as ``svv_system_privileges``,
  roles through ``svv_user_grants``). A database owner may not (Redshift allows it only for tables
  shared to its database through a datashare; the twin has none). Anyone else: the statement
  succeeds and does nothing, and leaves no history row. PostgreSQL 15 has no grantable VACUUM
  privilege, so a granted user's statement runs on a session of the table's owner.
"""

from __future__ import annotations

import re

import psycopg2
import sqlalchemy as sa

SCHEMA = "redshift_twin_sys"  # the stand-ins' schema (on the twin's search_path)

CATALOG = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.vacuum_log (
  user_name text, schema_name text, table_name text, table_id oid, vacuum_type text,
  is_automatic boolean, status text, start_time timestamp, end_time timestamp, reclaimed_rows bigint);
CREATE TABLE IF NOT EXISTS {SCHEMA}.table_state (
  schema_name text, table_name text, unsorted numeric, vacuum_status text,
  PRIMARY KEY (schema_name, table_name));
CREATE TABLE IF NOT EXISTS {SCHEMA}.system_privileges (identity_name text, system_privilege text);
ALTER TABLE {SCHEMA}.table_state ADD COLUMN IF NOT EXISTS analyze_status text;
CREATE TABLE IF NOT EXISTS {SCHEMA}.analyze_log (
  user_name text, schema_name text, table_name text, is_automatic char(1), status text,
  start_time timestamp, end_time timestamp);
CREATE OR REPLACE FUNCTION {SCHEMA}.is_superuser() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) $$;
CREATE OR REPLACE FUNCTION {SCHEMA}.svv_table_info_granted() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT {SCHEMA}.is_superuser() OR EXISTS (
    SELECT 1 FROM pg_class c, aclexplode(c.relacl) a
    WHERE c.oid = to_regclass('{SCHEMA}.svv_table_info') AND a.grantee <> 0
      AND a.privilege_type = 'SELECT' AND pg_has_role(current_user, a.grantee, 'MEMBER')) $$;
CREATE OR REPLACE FUNCTION {SCHEMA}.may_maintain(rel regclass, what text, who name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = who), false)
      OR (SELECT pg_get_userbyid(relowner) = who FROM pg_class WHERE oid = rel)
      OR EXISTS (SELECT 1 FROM {SCHEMA}.system_privileges p JOIN pg_roles r ON r.rolname = p.identity_name
                 WHERE p.system_privilege = upper(what) AND pg_has_role(who, r.oid, 'MEMBER')) $$;
CREATE OR REPLACE VIEW {SCHEMA}.svv_table_info AS
SELECT s.schemaname::text AS "schema", s.relname::text AS "table", s.relid AS table_id,
       (s.n_live_tup + s.n_dead_tup)::bigint AS tbl_rows, s.n_live_tup::bigint AS estimated_visible_rows,
       COALESCE(st.unsorted, 0)::numeric(5, 2) AS unsorted,
       LEAST(100, 100.0 * s.n_mod_since_analyze / GREATEST(s.n_live_tup, 1))::numeric(5, 2) AS stats_off,
       ceil(pg_total_relation_size(s.relid) / 1048576.0)::bigint AS size
FROM pg_stat_user_tables s
LEFT JOIN {SCHEMA}.table_state st ON st.schema_name = s.schemaname AND st.table_name = s.relname
WHERE s.n_live_tup + s.n_dead_tup > 0 AND {SCHEMA}.svv_table_info_granted();
GRANT SELECT ON {SCHEMA}.svv_table_info TO PUBLIC;
CREATE OR REPLACE VIEW {SCHEMA}.sys_vacuum_history AS
SELECT v.user_name, v.schema_name, v.table_name, v.table_id, v.vacuum_type, v.is_automatic, v.status,
       v.start_time, v.end_time, v.reclaimed_rows
FROM {SCHEMA}.vacuum_log v WHERE v.user_name = current_user OR {SCHEMA}.is_superuser()
UNION ALL
SELECT 'rdsdb', s.schemaname::text, s.relname::text, s.relid, 'Delete', true, 'Complete',
       s.last_autovacuum AT TIME ZONE 'UTC', s.last_autovacuum AT TIME ZONE 'UTC', NULL::bigint
FROM pg_stat_user_tables s WHERE s.last_autovacuum IS NOT NULL AND {SCHEMA}.is_superuser();
GRANT SELECT ON {SCHEMA}.sys_vacuum_history TO PUBLIC;
CREATE OR REPLACE VIEW {SCHEMA}.svv_system_privileges AS
SELECT p.system_privilege, p.identity_name,
       CASE WHEN r.rolcanlogin THEN 'user' ELSE 'role' END AS identity_type
FROM {SCHEMA}.system_privileges p JOIN pg_roles r ON r.rolname = p.identity_name;
GRANT SELECT ON {SCHEMA}.svv_system_privileges TO PUBLIC;
CREATE OR REPLACE VIEW {SCHEMA}.svv_user_grants AS
SELECT pg_get_userbyid(m.member)::text AS user_name, pg_get_userbyid(m.roleid)::text AS role_name
FROM pg_auth_members m;
GRANT SELECT ON {SCHEMA}.svv_user_grants TO PUBLIC;
CREATE OR REPLACE FUNCTION {SCHEMA}.vacuum_status(rel regclass) RETURNS text LANGUAGE sql STABLE
SECURITY DEFINER AS $$
  SELECT COALESCE((SELECT st.vacuum_status FROM {SCHEMA}.table_state st
                   JOIN pg_class c ON c.relname = st.table_name
                   JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = st.schema_name
                   WHERE c.oid = rel), 'Complete') $$;
CREATE OR REPLACE FUNCTION {SCHEMA}.record_vacuum(rel regclass, kind text, status text, started timestamp)
RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
  INSERT INTO {SCHEMA}.vacuum_log
  SELECT session_user, n.nspname, c.relname, c.oid, kind, false, status, started,
         (now() AT TIME ZONE 'UTC')::timestamp, NULL
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
  UPDATE {SCHEMA}.table_state st SET unsorted = 0
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = rel AND st.schema_name = n.nspname AND st.table_name = c.relname
    AND status = 'Complete' AND kind IN ('Sort', 'Full') $$;
CREATE OR REPLACE VIEW {SCHEMA}.sys_analyze_history AS
SELECT a.user_name, a.schema_name, a.table_name, a.is_automatic, a.status, a.start_time, a.end_time
FROM {SCHEMA}.analyze_log a WHERE {SCHEMA}.is_superuser();
GRANT SELECT ON {SCHEMA}.sys_analyze_history TO PUBLIC;
CREATE OR REPLACE FUNCTION {SCHEMA}.analyze_status(rel regclass) RETURNS text LANGUAGE sql STABLE
SECURITY DEFINER AS $$
  SELECT (SELECT st.analyze_status FROM {SCHEMA}.table_state st
          JOIN pg_class c ON c.relname = st.table_name
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = st.schema_name
          WHERE c.oid = rel) $$;
CREATE OR REPLACE FUNCTION {SCHEMA}.record_analyze(rel regclass, status text, started timestamp)
RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
  INSERT INTO {SCHEMA}.analyze_log
  SELECT session_user, n.nspname, c.relname, 'f', status, started, (now() AT TIME ZONE 'UTC')::timestamp
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {SCHEMA} TO PUBLIC;
"""

_VACUUM = re.compile(
    r"^\s*VACUUM\s+(?:(FULL|SORT\s+ONLY|DELETE\s+ONLY|REINDEX|RECLUSTER)\s+)?(\S+)"
    r"(?:\s+TO\s+\d+\s+PERCENT)?(?:\s+BOOST)?\s*;?\s*$",
    re.IGNORECASE,
)
_ANALYZE = re.compile(r"^\s*ANALYZE\s+(\S+)(?:\s+(?:PREDICATE|ALL)\s+COLUMNS)?\s*;?\s*$", re.IGNORECASE)
_KINDS = {"": "Full", "FULL": "Full", "SORT ONLY": "Sort", "DELETE ONLY": "Delete"}
NO_OP = "SELECT 1 WHERE false"
# A vacuum_status that leaves no history row and does nothing: what the product must survive
# (a history the user cannot see, or a skip Redshift did not record).
NO_ROW = "no row"  # what the driver runs instead: the hook did (or skipped) the work


def _run_as_owner(conn, table: str, sql: str) -> None:
    """Run ``sql`` on a session of the table's owner (local PostgreSQL trusts local logins)."""
    cur = conn.cursor()
    cur.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", (table,))
    owner = cur.fetchone()[0]
    params = conn.get_dsn_parameters()
    with psycopg2.connect(host=params.get("host"), port=params.get("port"), dbname=params["dbname"],
                          user=owner) as other:  # fmt: skip
        other.autocommit = True
        other.cursor().execute(sql)
    other.close()


# The VACUUM/ANALYZE a twin guard put off until the driver's turn (Connection.info key): run
# in after_cursor_execute, it sees what the product set before sending it (statement_timeout).
PENDING = "redshift_twin_pending_maintenance"
# What the driver runs meanwhile: it starts like the statement it stands for, so an engine that
# treats VACUUM/ANALYZE apart (their own statement_timeout) still does; a no-op in effect.
STAND_IN = "ANALYZE pg_catalog.pg_am"


def is_maintenance(sql: str) -> bool:
    """A VACUUM or ANALYZE statement the twin does itself (:func:`maintenance`)."""
    return bool(_VACUUM.match(sql) or _ANALYZE.match(sql))


def maintenance(conn, sql: str) -> str | None:
    """Do a VACUUM/ANALYZE on the DB-API connection ``conn`` as Redshift would; return the
    statement the driver should run instead (a no-op), or None when ``sql`` is neither."""
    vacuum, analyze = _VACUUM.match(sql), _ANALYZE.match(sql)
    if not vacuum and not analyze:
        return None
    table = vacuum.group(2) if vacuum else analyze.group(1)
    what = "VACUUM" if vacuum else "ANALYZE"
    plain = f"{what} {table}"
    cur = conn.cursor()
    cur.execute(
        f"SELECT {SCHEMA}.may_maintain(%s::regclass, %s, current_user), {SCHEMA}.is_superuser() "
        "OR pg_get_userbyid(relowner) = current_user, (now() AT TIME ZONE 'UTC')::timestamp, "
        f"{SCHEMA}.vacuum_status(%s::regclass) FROM pg_class WHERE oid = %s::regclass",
        (table, what, table, table),
    )
    allowed, as_self, started, status = cur.fetchone()
    if not allowed:
        return NO_OP  # Redshift: "completes successfully but has no effect"
    if vacuum and status == NO_ROW:
        return NO_OP
    if vacuum and status != "Complete":
        cur.execute(f"SELECT {SCHEMA}.record_vacuum(%s::regclass, %s, %s, %s)",
                    (table, _kind(vacuum.group(1)), status, started))  # fmt: skip
        return NO_OP
    if analyze:
        cur.execute(f"SELECT {SCHEMA}.analyze_status(%s::regclass)", (table,))
        if cur.fetchone()[0] == "Skipped":  # Redshift: too few rows changed since the last ANALYZE
            cur.execute(f"SELECT {SCHEMA}.record_analyze(%s::regclass, 'Skipped', %s)", (table, started))
            return NO_OP
    if as_self:
        cur.execute(plain)
    else:
        _run_as_owner(conn, table, plain)
    if analyze:
        status = "PredicateColumn" if "PREDICATE" in sql.upper() else "Full"
        cur.execute(f"SELECT {SCHEMA}.record_analyze(%s::regclass, %s, %s)", (table, status, started))
    if vacuum:
        cur.execute(f"SELECT {SCHEMA}.record_vacuum(%s::regclass, %s, %s, %s)",
                    (table, _kind(vacuum.group(1)), "Complete", started))  # fmt: skip
    return NO_OP


def _kind(word: str | None) -> str:
    key = " ".join((word or "").upper().split())
    return _KINDS.get(key, key.title())


# --- CREATE TABLE ... AS: VARCHAR(n) is n bytes -------------------------------------------------

_CTAS = re.compile(r"^\s*CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TABLE\s+([\w.\"]+)\s+AS\b", re.IGNORECASE)


def ctas_byte_checks(conn, sql: str) -> None:
    """After a ``CREATE TABLE ... AS``, each VARCHAR(n) column of the new table holds n bytes
    from then on, as on Redshift (a CHECK on ``octet_length``, ``NOT VALID``: the rows the query
    wrote are the query's business; PostgreSQL's CAST counts characters)."""
    match = _CTAS.match(sql)
    if not match:
        return
    cur = conn.cursor()
    cur.execute(
        "SELECT a.attname, a.atttypmod - 4 FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
        "AND a.atttypid = 'varchar'::regtype AND a.atttypmod > 4 AND a.attnum > 0",
        (match.group(1),),
    )
    for column, size in cur.fetchall():
        cur.execute(
            f'ALTER TABLE {match.group(1)} ADD CONSTRAINT "{column}_varchar_bytes" '
            f'CHECK (octet_length("{column}") <= {int(size)}) NOT VALID'
        )


def after_execute(conn, cursor, statement, parameters, context, executemany) -> None:
    """after_cursor_execute of twin engines (tests/redshift_twin.py registers it)."""
    if conn.engine.url.query.get("application_name") == "redshift_twin":
        pending = conn.info.pop(PENDING, None)
        if pending is not None:
            maintenance(cursor.connection, pending)
        ctas_byte_checks(cursor.connection, statement)


# --- what tests drive ------------------------------------------------------------------------------


def set_table_state(
    admin: sa.Engine,
    schema: str,
    table: str,
    *,
    unsorted: float | None = None,
    vacuum_status: str | None = None,
) -> None:
    """The twin's ``unsorted`` figure and/or the status its next VACUUM of the table ends with."""
    with admin.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.table_state VALUES (:s, :t, :u, :v) "
                "ON CONFLICT (schema_name, table_name) DO UPDATE SET "
                "unsorted = COALESCE(EXCLUDED.unsorted, table_state.unsorted), "
                "vacuum_status = EXCLUDED.vacuum_status"
            ),
            {"s": schema, "t": table, "u": unsorted, "v": vacuum_status},
        )


def set_analyze_status(admin: sa.Engine, schema: str, table: str, status: str | None) -> None:
    """The status the twin's next ANALYZE of the table ends with ('Skipped'; None: it runs)."""
    with admin.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.table_state (schema_name, table_name, analyze_status) "
                "VALUES (:s, :t, :a) ON CONFLICT (schema_name, table_name) DO UPDATE SET analyze_status = :a"
            ),
            {"s": schema, "t": table, "a": status},
        )


def grant_system_privilege(admin: sa.Engine, identity: str, privilege: str) -> None:
    """Redshift's ``GRANT <VACUUM|ANALYZE> ... TO <identity>`` system permission, in the twin."""
    with admin.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {SCHEMA}.system_privileges VALUES (:i, :p)"),
                     {"i": identity, "p": privilege.upper()})  # fmt: skip


def add_history(admin: sa.Engine, schema: str, table: str, *, kind: str, status: str, automatic: bool,
                user: str, started) -> None:  # fmt: skip
    """A ``sys_vacuum_history`` row of the test's own (e.g. an automatic vacuum)."""
    with admin.begin() as conn:
        conn.execute(
            sa.text(f"INSERT INTO {SCHEMA}.vacuum_log VALUES (:u, :s, :t, NULL, :k, :a, :st, :b, :b, NULL)"),
            {"u": user, "s": schema, "t": table, "k": kind, "a": automatic, "st": status, "b": started},
        )
