"""Synthetic data: determinism, and the manifest checked against the data by independent SQL.

The checks below are plain text SQL written here (not the generator's bookkeeping nor the project's
rule module), so a wrong manifest or wrong data fails them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from conftest import run_cli

from order_tracking import synthetic
from order_tracking.commands.common import source_engine, warehouse_engine
from order_tracking.settings import Settings

AS_OF = datetime(2026, 1, 15, 3, 0, 0)  # 200 days back crosses 2025 h1/h2: two history halves
N = 2000
TYPES = ("UTI_UTS_TIME_MISMATCH", "ORDER_MISSING_SPATH", "REACTIVATED_ORDER_MISSING_ECS")


def _seed(settings: Settings, **kw) -> dict:
    cfg = synthetic.SeedConfig(as_of=kw.pop("as_of", AS_OF), orders=kw.pop("orders", N), **kw)
    src = None if cfg.skip_source else source_engine(settings)
    return synthetic.seed(settings, cfg, warehouse_engine(settings), src)


def _q(text: str, **params) -> sa.TextClause:
    # Typed binds: SQLite stores DateTime as text with microseconds; a typed bind formats alike.
    return sa.text(text).bindparams(*(sa.bindparam(k, v, type_=sa.DateTime) for k, v in params.items()))


def _hist(conn: sa.Connection, schema: str, prefix: str) -> list[str]:
    return sorted(n for n in sa.inspect(conn).get_table_names(schema=schema) if n.startswith(prefix))


def _findings(wh: sa.Engine, settings: Settings, as_of: datetime) -> dict[str, list[int]]:
    """Tests 1-3 as plain SQL over the warehouse."""
    m = settings.mart_schema
    w = {"w0": as_of - timedelta(hours=24), "a": as_of}
    scope = "u.update_time > :w0 AND u.update_time <= :a"
    with wh.connect() as conn:
        hist_uts = _hist(conn, m, "hist_uni_tracking_spath_")
        mismatch = conn.execute(
            _q(
                f"SELECT u.order_id FROM {m}.mart_uni_tracking_info u JOIN (SELECT order_id, "
                f"MAX(pathtime) AS mx FROM {m}.mart_uni_tracking_spath GROUP BY order_id) s "
                f"ON s.order_id = u.order_id WHERE {scope} AND u.update_time <> s.mx",
                **w,
            )
        ).scalars()
        no_hist = " ".join(
            f"AND NOT EXISTS (SELECT 1 FROM {m}.{h} x WHERE x.order_id = u.order_id)" for h in hist_uts
        )
        missing = conn.execute(
            _q(
                f"SELECT u.order_id FROM {m}.mart_uni_tracking_info u WHERE {scope} AND NOT EXISTS "
                f"(SELECT 1 FROM {m}.mart_uni_tracking_spath s WHERE s.order_id = u.order_id) {no_hist}",
                **w,
            )
        ).scalars()
        missing = sorted(missing)
        reactivated = conn.execute(
            _q(
                f"SELECT u.order_id FROM {m}.mart_uni_tracking_info u WHERE {scope} AND NOT EXISTS "
                f"(SELECT 1 FROM {m}.mart_ecs_order_info e WHERE e.order_id = u.order_id)",
                **w,
            )
        ).scalars()
        return dict(zip(TYPES, (sorted(mismatch), missing, sorted(reactivated)), strict=True))


def _test0(wh: sa.Engine, src: sa.Engine, settings: Settings, as_of: datetime) -> dict[str, int]:
    """Test 0 as plain SQL: rows missing from raw (source count - raw count, floor 0) per table."""
    w = {"f": as_of - timedelta(minutes=125), "b": as_of - timedelta(minutes=5)}
    m, k = settings.mart_schema, settings.source_schema
    out = {}
    for name, col in (("ecs_order_info", "add_time"), ("uni_tracking_info", "update_time")):
        out[name] = (k, f"{name}", col, f"{name}_raw", col)
    out["uni_tracking_spath"] = (k, "uni_tracking_spath", "pathTime", "uni_tracking_spath_raw", "pathtime")
    result = {}
    for name, (ks, src_t, src_col, raw_t, raw_col) in out.items():
        q_src = f"SELECT COUNT(*) FROM {ks}.{src_t} WHERE {src_col} >= :f AND {src_col} < :b"
        q_raw = f"SELECT COUNT(*) FROM {m}.{raw_t} WHERE {raw_col} >= :f AND {raw_col} < :b"
        with src.connect() as sc, wh.connect() as wc:
            result[name] = max(0, sc.execute(_q(q_src, **w)).scalar() - wc.execute(_q(q_raw, **w)).scalar())
    return result


def _check_manifest(settings: Settings, manifest: dict, as_of: datetime = AS_OF) -> None:
    wh, src = warehouse_engine(settings), source_engine(settings)
    found = _findings(wh, settings, as_of)
    assert found == manifest["expected"]
    assert _test0(wh, src, settings, as_of) == manifest["extraction_dropped"]
    traps = manifest["traps"]
    flagged = {i for ids in found.values() for i in ids}
    for group in ("just_outside_window", "at_window_start"):
        for typ in TYPES:
            assert traps[group][typ] and not flagged & set(traps[group][typ])
    assert traps["spath_only_in_history"] and not flagged & set(traps["spath_only_in_history"])
    for typ, ids in traps["at_as_of_inside"].items():
        assert set(ids) <= set(found[typ])
    m = settings.mart_schema
    with wh.connect() as conn:
        hist = _hist(conn, m, "hist_")
        assert hist == manifest["hist_tables"]
        assert all(conn.execute(sa.text(f"SELECT COUNT(*) FROM {m}.{h}")).scalar() for h in hist)
        # every order in mart uti; raw uti holds duplicate order ids (two 15-minute cycles)
        assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {m}.mart_uni_tracking_info")).scalar() == N
        dup = f"SELECT COUNT(*) - COUNT(DISTINCT order_id) FROM {m}.uni_tracking_info_raw"
        assert conn.execute(sa.text(dup)).scalar() > 0
        # the history-only trap really has history rows; reactivated orders sit in a hist_ecs table
        hist_ecs = " UNION ALL ".join(f"SELECT order_id FROM {m}.{h}" for h in hist if "ecs" in h)
        in_hist_ecs = set(conn.execute(sa.text(hist_ecs)).scalars())
        assert set(manifest["expected"]["REACTIVATED_ORDER_MISSING_ECS"]) <= in_hist_ecs
        future = f"SELECT COUNT(*) FROM {m}.mart_uni_tracking_spath WHERE pathtime > :a"
        assert conn.execute(_q(future, a=as_of)).scalar() == 0  # nothing after as_of
    with src.connect() as conn:
        n_src = conn.execute(sa.text(f"SELECT COUNT(*) FROM {settings.source_schema}.uni_tracking_spath"))
        assert n_src.scalar() == manifest["counts"]["source"]["uni_tracking_spath"]


def _checksum(settings: Settings, manifest: dict) -> str:
    """Hash of every row of every seeded table, in a fixed order."""
    digest = hashlib.sha256()
    for role, schema_name, engine in (
        ("warehouse", settings.mart_schema, warehouse_engine(settings)),
        ("source", settings.source_schema, source_engine(settings) if manifest["source_loaded"] else None),
    ):
        if engine is None:
            continue
        with engine.connect() as conn:
            for name in sorted(manifest["counts"][role]):
                table = sa.Table(name, sa.MetaData(), schema=schema_name, autoload_with=conn)
                cols = sorted(table.c, key=lambda c: c.name.lower())
                rows = conn.execute(sa.select(*cols).order_by(*cols)).all()
                digest.update(f"{name}:{[tuple(r) for r in rows]!r}".encode())
    return digest.hexdigest()


def test_manifest_matches_data_postgres_and_mariadb(pg_warehouse, maria_source, schemas, tmp_path):
    settings = Settings.from_env()
    manifest = _seed(settings)
    assert manifest["counts"]["warehouse"]["mart_uni_tracking_info"] == N
    assert [len(manifest["expected"][t]) for t in TYPES] == [5, 4, 3]
    assert manifest["extraction_dropped"] == {
        "ecs_order_info": 2,
        "uni_tracking_info": 0,
        "uni_tracking_spath": 2,
    }
    assert len(manifest["hist_tables"]) == 4  # 2025 h1 and h2, spath and ecs
    _check_manifest(settings, manifest)
    # PostgreSQL is loaded by binary COPY, SQLite by Core inserts: the rows must be the same.
    lite = Settings.from_env(
        warehouse_url=f"sqlite:///{tmp_path / 'x' / 'w.db'}",
        source_url=f"sqlite:///{tmp_path / 'x' / 's.db'}",
    )
    assert _checksum(settings, manifest) == _checksum(lite, _seed(lite))


def test_manifest_matches_data_sqlite_seeded_by_cli(sqlite_urls, tmp_path):
    path = tmp_path / "m.json"
    args = ["seed", "--orders", str(N), "--as-of", "2026-01-15T03:00:00Z", "--manifest", str(path)]
    proc = run_cli(
        *args, "--mismatch", "3", "--missing-spath", "2", "--reactivated", "1", "--dropped-raw", "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert "injected UTI_UTS_TIME_MISMATCH: 3" in proc.stdout
    assert "loading mart_uni_tracking_spath" in proc.stderr  # progress display
    manifest = json.loads(path.read_text())
    assert manifest["as_of"] == "2026-01-15T03:00:00"
    assert [len(manifest["expected"][t]) for t in TYPES] == [3, 2, 1]
    _check_manifest(Settings.from_env(), manifest)


def test_clean_dataset_has_no_findings(sqlite_urls):
    settings = Settings.from_env()
    cfg = synthetic.SeedConfig(as_of=AS_OF, orders=N, mismatch=9, dropped_raw=3).clean()
    manifest = synthetic.seed(settings, cfg, warehouse_engine(settings), source_engine(settings))
    assert manifest["expected"] == {t: [] for t in TYPES}
    assert set(manifest["extraction_dropped"].values()) == {0}
    _check_manifest(settings, manifest)  # traps are still there and still not flagged


def test_same_seed_same_data_other_seed_differs(tmp_path):
    def run(seed: int, d: str) -> tuple[dict, str]:
        s = Settings.from_env(
            warehouse_url=f"sqlite:///{tmp_path / d / 'w.db'}",
            source_url=f"sqlite:///{tmp_path / d / 's.db'}",
        )
        manifest = _seed(s, seed=seed)
        return manifest, _checksum(s, manifest)

    m1, c1 = run(7, "a")
    m2, c2 = run(7, "b")
    m3, c3 = run(8, "c")
    assert m1 == m2 and c1 == c2
    assert m1["expected"] != m3["expected"] and c1 != c3


def test_refuses_non_empty_tables_and_replace_keeps_exceptions(pg_warehouse, maria_source, schemas, tmp_path):
    settings = Settings.from_env()
    manifest = _seed(settings, skip_source=False)
    before = _checksum(settings, manifest)
    exc = f"{schemas.ods}.order_tracking_exceptions"
    with warehouse_engine(settings).begin() as conn:
        conn.execute(
            _q(
                f"INSERT INTO {exc} (order_id, exception_type, detected_at, last_seen_at) "
                "VALUES (1, 'ORDER_MISSING_SPATH', :t, :t)",
                t=AS_OF,
            )
        )
    args = [
        "seed",
        "--orders",
        str(N),
        "--as-of",
        "2026-01-15T03:00:00",
        "--manifest",
        str(tmp_path / "m.json"),
    ]
    proc = run_cli(*args, "--random-seed", "99")
    assert proc.returncode == 3
    assert f"{schemas.mart}.mart_ecs_order_info" in proc.stderr and "--replace" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()
    assert _checksum(settings, manifest) == before

    proc = run_cli(*args, "--random-seed", "99", "--replace", "--quiet")
    assert proc.returncode == 0, proc.stderr
    replaced = json.loads((tmp_path / "m.json").read_text())
    assert "mart_uni_tracking_spath" in replaced["replaced"]
    assert _checksum(settings, replaced) != before
    _check_manifest(settings, replaced)
    with warehouse_engine(settings).connect() as conn:
        assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {exc}")).scalar() == 1


def test_bad_inputs_one_line_exit_3(tmp_path):
    cases = [
        (["--as-of", "yesterday"], "--as-of"),
        (["--orders", "0"], "--orders"),
        (["--orders", "many"], "--orders"),
        (["--mismatch", "-1"], "--mismatch"),
    ]
    for extra, needle in cases:
        proc = run_cli("seed", "--manifest", str(tmp_path / "m.json"), *extra)
        assert proc.returncode == 3, (extra, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("seed", "--orders", "10", "--as-of", "2026-01-15T03:00:00")
    assert proc.returncode == 3 and "too small" in proc.stderr

    url = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/nowhere"
    proc = run_cli("--warehouse-url", url, "seed", "--manifest", str(tmp_path / "m.json"))
    assert proc.returncode == 3
    assert "cannot connect to warehouse" in proc.stderr and "s3cr3t-pw" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    url = "redshift+psycopg2://alice:s3cr3t-pw@example.invalid:5439/prod"
    proc = run_cli("--warehouse-url", url, "seed", "--manifest", str(tmp_path / "m.json"))
    assert proc.returncode == 3 and "Redshift" in proc.stderr and "s3cr3t-pw" not in proc.stderr
    assert not Path(tmp_path / "m.json").exists()
