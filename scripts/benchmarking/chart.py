"""The chart: median seconds per measure, and the peak RSS of ``monitor`` against its target."""

from __future__ import annotations

from pathlib import Path

from benchmarking.config import TARGETS


def write_chart(r: dict, path: Path) -> None:
    """Write the PNG next to results.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1.3]})
    labels = ["raw SQL", "GX stock", "ours:\nvalidate", "ours:\nmonitor", "validate\n4x history"]
    keys = ["raw", "stock", "validate", "full", "validate_4x"]
    values = [r["detail"][k]["median_s"] for k in keys]
    colors = ["#777777", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"]
    bars = ax1.bar(labels, values, color=colors)
    for bar, v in zip(bars, values, strict=True):
        ax1.annotate(f"{v:.2f} s\n{v / r['raw_s']:.2f}x", (bar.get_x() + bar.get_width() / 2, v),
                     ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax1.set_ylabel("seconds, Tests 1-3 (median)")
    ax1.set_ylim(0, max(values) * 1.3)
    ax1.set_title(f"{r['orders']:,} orders, {r['spath_rows']:,} spath rows")
    rss = [r["rss_5k_mb"], r["rss_500k_mb"]]
    bars = ax2.bar([f"{r['findings_5k']:,}\nfindings", f"{r['findings_500k']:,}\nfindings"], rss,
                   color=["#1f77b4", "#ff7f0e"])  # fmt: skip
    for bar, v in zip(bars, rss, strict=True):
        ax2.annotate(
            f"{v:.0f} MB", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=8
        )
    ax2.axhline(TARGETS["rss_mb"], color="#d62728", linestyle="--", linewidth=1)
    ax2.set_ylim(0, TARGETS["rss_mb"] * 1.15)
    ax2.set_ylabel("peak RSS of monitor, MB")
    ax2.set_title("memory")
    m = r["machine"]
    title = f"order-tracking monitor benchmark, {m['date']}, {m['cores']} cores, PostgreSQL {m['postgresql']}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
