"""The rule SQL compiled for each dialect: one Core definition, dialect-specific pieces only
where the dialects differ (Redshift cannot run here, so its text is checked)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

from order_tracking import schema
from order_tracking.checks import extraction_sql, rules
from order_tracking.settings import Settings
from tests import redshift_twin

AS_OF = datetime(2026, 11, 25, 3, 0, 0)


@pytest.fixture
def tables() -> schema.Tables:
    return schema.build_tables(Settings.from_env())


def _all_rules(tables: schema.Tables) -> list[rules.RuleQuery]:
    window = rules.Window.lookback(AS_OF, 24)
    return [
        rules.uti_uts_time_mismatch(tables, window),
        rules.order_missing_spath(tables, window, [tables.hist_uts(2026, 1)]),
        rules.reactivated_order_missing_ecs(
            tables, window, [tables.hist_ecs(2025, 2), tables.hist_ecs(2026, 1)]
        ),
    ]


def test_redshift_text_of_every_rule(tables):
    redshift = RedshiftDialect_psycopg2()
    t1, t2, t3 = (rules.compile_sql(r.sample_with_count(), redshift) for r in _all_rules(tables))
    window = (
        "settlement_public.mart_uni_tracking_info.update_time > '2026-11-24 03:00:00' AND "
        "settlement_public.mart_uni_tracking_info.update_time <= '2026-11-25 03:00:00'"
    )
    for text in (t1, t2, t3):
        assert window in text  # the window first: Redshift prunes by the sort key
        # one row per order; distinct orders counted; NULL order_ids counted apart, sorted last
        assert "GROUP BY findings.order_id) AS per_order" in text
        assert "count(per_order.order_id) OVER () AS failing_count" in text
        assert "THEN per_order.rows_per_order ELSE 0 END) OVER () AS skipped_null_order_ids" in text
        assert "ORDER BY counted.order_id NULLS LAST \n LIMIT 200" in text
    assert "DATEDIFF(microsecond, last_path.max_pathtime, scope.update_time)" in t1
    assert "EXTRACT(EPOCH" not in t1
    assert "hist_uni_tracking_spath_2026_h1.order_id = scope.order_id" in t2
    # Test 3 names the newest history table first, and only for the sampled failing orders.
    assert t3.index("THEN 'hist_ecs_order_info_2026_h1'") < t3.index("THEN 'hist_ecs_order_info_2025_h2'")
    assert "hist_ecs_order_info_2026_h1.order_id = sample.order_id" in t3  # correlated to the sample


@pytest.mark.parametrize(
    ("dialect", "fragment"),
    [
        (sqlite.dialect(), "substr(substr(scope.update_time, 21) || '000000', 1, 6)"),
        (
            postgresql.psycopg2.dialect(),
            "EXTRACT(EPOCH FROM (scope.update_time - last_path.max_pathtime)) * 1000000",
        ),
        (mysql.pymysql.dialect(), "TIMESTAMPDIFF(MICROSECOND, last_path.max_pathtime, scope.update_time)"),
    ],
)
def test_microseconds_between_per_dialect(tables, dialect, fragment):
    rule = rules.uti_uts_time_mismatch(tables, rules.Window.lookback(AS_OF, 24))
    assert fragment in rules.compile_sql(rule.select, dialect)


def test_extraction_window_is_closed_and_half_open(tables):
    window = rules.Window.extraction(AS_OF, 7200, 300)
    assert (window.start, window.end) == (datetime(2026, 11, 25, 0, 55), datetime(2026, 11, 25, 2, 55))
    text = rules.compile_sql(extraction_sql.source_counts(tables, window), mysql.pymysql.dialect())
    assert "kuaisong.uni_tracking_spath.`pathTime` >= '2026-11-25 00:55:00'" in text
    assert "kuaisong.uni_tracking_spath.`pathTime` < '2026-11-25 02:55:00'" in text


def test_extraction_shortfall_needs_every_source_count(tables):
    with pytest.raises(ValueError, match="uni_tracking_spath"):
        extraction_sql.extraction_shortfall(
            tables, rules.Window.extraction(AS_OF, 7200, 300), {"ecs_order_info": 1, "uni_tracking_info": 1}
        )


def test_infinite_times_are_guarded_on_postgresql_only(tables):
    """PostgreSQL refuses to subtract 'infinity' (issue 28): the difference is NULL there and the
    note says so. Redshift has no infinite timestamps: its DATEDIFF stays as it was."""
    rule = rules.uti_uts_time_mismatch(tables, rules.Window.lookback(AS_OF, 24))
    pg = rules.compile_sql(rule.sample_with_count(), postgresql.psycopg2.dialect())
    assert (
        "CASE WHEN isfinite(scope.update_time) AND isfinite(last_path.max_pathtime) THEN "
        "CAST(EXTRACT(EPOCH FROM (scope.update_time - last_path.max_pathtime)) * 1000000 AS BIGINT) END"
    ) in pg
    assert "no diff can be computed (infinite or out of range)" in pg
    redshift = rules.compile_sql(rule.sample_with_count(), RedshiftDialect_psycopg2())
    assert "isfinite" not in redshift


def test_rules_stay_redshift_sql_with_one_scan_per_table(tables):
    """The evidence pathtime is fetched as text (Python cannot hold 'infinity' or year 294276);
    the guard of the Redshift twin accepts every rule, and the guards add no read: spath once,
    the window of mart_uni_tracking_info twice (the scope, and the orders whose spath is read),
    as before issue 28."""
    redshift = RedshiftDialect_psycopg2()
    texts = [rules.compile_sql(r.sample_with_count(), redshift) for r in _all_rules(tables)]
    assert "CAST(last_path.max_pathtime AS VARCHAR(64)) AS max_pathtime" in texts[0]
    for text in texts:
        assert redshift_twin.refusal(text) is None
    t1 = texts[0]
    assert t1.count("FROM settlement_public.mart_uni_tracking_spath") == 1
    assert t1.count("FROM settlement_public.mart_uni_tracking_info") == 2


@pytest.mark.parametrize(
    ("type_", "usable"),
    [
        ("bigint", True),
        ("integer", True),
        ("numeric(20,0)", True),
        ("double precision", True),
        ("BIGINT", True),
        ("int8", True),
        ("DECIMAL(20, 0)", True),
        ("character varying(32)", False),
        ("text", False),
        ("VARCHAR(32)", False),
        ("timestamp without time zone", False),
        ("interval", False),
    ],
)
def test_history_order_id_must_compare_with_bigint(type_, usable):
    problem = schema.hist_table_problem([("ORDER_ID", type_), ("pathtime", "timestamp")])
    if usable:
        assert problem is None
    else:
        assert problem == f"its order_id column is {type_}, not a number the rules can compare with BIGINT"
    assert schema.hist_table_problem([("id", "bigint")]) == "has no order_id column"
