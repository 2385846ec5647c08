"""The report: the machine, the verdict per target and the table printed at the end."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from benchmarking.config import JUDGED_AT_ORDERS, RATIO_TARGETS, TARGETS
from benchmarking.verification import verification_line

if TYPE_CHECKING:
    import sqlalchemy as sa


def machine_info(engine: sa.Engine) -> dict:
    """When, on how many cores and with which PostgreSQL and Python the run was made."""
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
    if "fixed_kept_over_fresh" in r:  # the fixed cost does not depend on the data: judged at any scale
        kept = r["fixed_kept_over_fresh"]
        target = TARGETS["fixed_kept_over_fresh"]
        checks.append(("retention", f"{kept:.2f} <= {target} (a year kept, / fresh)", kept <= target))
    return [(name, text, ok, at_scale or name not in RATIO_TARGETS) for name, text, ok in checks]


def table_text(r: dict) -> str:
    """The table and the PASS/FAIL lines the run prints, from its results."""
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
        + " (the Data Docs index lists them all; nothing pruned)",
        *_kept_lines(r),
        "rule scans per check (validation and write together; 1: the staged findings fed both):",
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
        verification_line(r),
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


def _kept_lines(r: dict) -> list[str]:
    """The fixed cost with a year of results and the default retention, against a fresh store."""
    kept = r.get("fixed_kept")
    if not kept:
        return []
    return [
        f"  a year of results kept {kept['keep_days']} days (the run prunes: {kept['results_before']:,} -> "
        f"{kept['results_after']:,} stored): {kept['median_s']:.3f} s against {kept['fresh_s']:.3f} s "
        f"fresh (this run's own {kept['fresh_results']:,}) in the same rounds: {kept['over_fresh']:.2f}x "
        "(single rounds "
        f"{_spread(kept['over_fresh_rounds'])}x; target <= {TARGETS['fixed_kept_over_fresh']}x; "
        f"CPU time {kept['cpu_over_fresh']:.2f}x)"
    ]


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}"
