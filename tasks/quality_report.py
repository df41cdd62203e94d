"""Data-quality report: one realized-variance chart per symbol plus the DQ failures, in markdown.

:func:`write_quality_report` takes daily features (``tasks.features.DAILY_FEATURES_SCHEMA``) and stored
data-quality results (``warehouse.quality.read_dq_results``, read by the caller) and writes
``<out_dir>/quality_report.md`` with one PNG per symbol next to it. Each chart shows the daily RV on a
log scale with its 30-session rolling median, the jump days (BNS p-value below :data:`JUMP_P_VALUE`),
the days with low coverage, and the partitions whose data-quality checks failed. No I/O other than
the files written; figures are drawn on matplotlib's Agg canvas without pyplot.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from core.errors import ConfigError, DataError

#: A day is a jump day when the BNS jump test's p-value is below this.
JUMP_P_VALUE = 0.01
#: Fallback when no p-value column exists: jump variation above this share of RV.
JUMP_SHARE = 0.5
#: Coverage below this is drawn as low when the frame has no ``low_coverage`` flag.
LOW_COVERAGE = 0.8
ROLLING_SESSIONS = 30

# Feature column names, with the aliases other layouts use.
_ALIASES = {
    "bns_p": ("bns_p", "bns_pvalue"),
    "jv": ("jv", "jump_var"),
    "n_bars": ("n_bars", "bar_count"),
}

_COLORS = {
    "rv": "#4C72B0",
    "median": "#1B2A49",
    "jump": "#DD5A2B",
    "low": "#8E44AD",
    "coverage": "#2A9D8F",
    "error": "#D62728",
    "warning": "#F2A541",
}


def _col(frame: pl.DataFrame, name: str) -> str | None:
    for candidate in _ALIASES.get(name, (name,)):
        if candidate in frame.columns:
            return candidate
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "symbol"


def _md(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _fmt_float(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{float(value):.{digits}g}"


def _partition_window(partition: str) -> tuple[date, date] | None:
    """The date window of a partition label ``SYM/interval/2020-01-01..2020-02-01``, if it has one."""
    match = re.search(r"(\d{4}-\d{2}-\d{2})[T0-9:Z]*\.\.(\d{4}-\d{2}-\d{2})", partition)
    if not match:
        return None
    return date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2))


def _partition_symbol(partition: str) -> str:
    return partition.split("/", 1)[0]


def prepare_symbol_frame(features: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """One symbol's daily rows with the columns the chart needs.

    Parameters
    ----------
    features : pl.DataFrame
        Daily features with at least ``symbol``, ``session_date``, ``rv`` and ``coverage``.
    symbol : str
        The symbol to select.

    Returns
    -------
    pl.DataFrame
        ``session_date, rv, rv_median, coverage, low_coverage, jump`` sorted by date; ``rv_median``
        is the rolling median over :data:`ROLLING_SESSIONS` sessions (at least 5 present).
    """
    rows = features.filter(pl.col("symbol") == symbol).sort("session_date")
    p_col, jv_col = _col(rows, "bns_p"), _col(rows, "jv")
    if p_col is not None:
        jump = pl.col(p_col) < JUMP_P_VALUE
    elif jv_col is not None:
        jump = pl.col(jv_col) > JUMP_SHARE * pl.col("rv")
    else:
        jump = pl.lit(False)
    low = pl.col("low_coverage") if "low_coverage" in rows.columns else pl.col("coverage") < LOW_COVERAGE
    return rows.select(
        pl.col("session_date").cast(pl.Date),
        pl.col("rv").cast(pl.Float64),
        pl.col("rv")
        .cast(pl.Float64)
        .rolling_median(window_size=ROLLING_SESSIONS, min_samples=5)
        .alias("rv_median"),
        pl.col("coverage").cast(pl.Float64),
        low.fill_null(False).alias("low_coverage"),
        jump.fill_null(False).alias("jump"),
    )


def plot_symbol(
    frame: pl.DataFrame,
    symbol: str,
    path: Path,
    dq_windows: list[tuple[date, date, str]] | None = None,
    coverage_threshold: float = LOW_COVERAGE,
) -> Path:
    """Draw one symbol's chart (RV on a log scale over coverage) and save it as PNG.

    Parameters
    ----------
    frame : pl.DataFrame
        Output of :func:`prepare_symbol_frame`.
    symbol : str
        Used in the title.
    path : Path
        PNG file to write.
    dq_windows : list[tuple[date, date, str]] | None
        ``(start, end, severity)`` of partitions with failed checks, shaded on both panels.
    coverage_threshold : float
        Drawn as a dashed line on the coverage panel.

    Returns
    -------
    Path
        ``path``.
    """
    dates = frame["session_date"].to_list()
    fig, ax, axc = _figure()
    errors_shown = _shade_failed((ax, axc), dq_windows or [])
    _draw_rv(fig, ax, frame, symbol)
    handles = _legend_handles(coverage_threshold, errors_shown)
    _draw_coverage(axc, frame, coverage_threshold)
    locator = mdates.AutoDateLocator(minticks=5, maxticks=12)
    axc.xaxis.set_major_locator(locator)
    axc.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if frame.height:
        pad = max((dates[-1] - dates[0]) * 0.01, timedelta(days=1))
        ax.set_xlim(dates[0] - pad, dates[-1] + pad)
    if frame["coverage"].to_numpy().size == 0:
        axc.text(0.5, 0.5, "no sessions", transform=axc.transAxes, ha="center", color="#999999")
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        fontsize=8.5,
        frameon=False,
        bbox_to_anchor=(0.5, -0.015),
    )
    fig.align_ylabels([ax, axc])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    return path


def _figure() -> tuple[Figure, Any, Any]:
    """The figure and its two panels (RV over coverage), styled; an Agg canvas, no pyplot."""
    # An Agg canvas on a bare Figure: no pyplot state, safe in worker threads.
    fig = Figure(figsize=(12, 6.6), dpi=130)
    FigureCanvasAgg(fig)
    ax, axc = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1], "hspace": 0.06})
    for axis in (ax, axc):
        axis.set_facecolor("#FBFBFD")
        axis.grid(True, which="major", color="#DADDE3", linewidth=0.6)
        for side in ("top", "right"):
            axis.spines[side].set_visible(False)
    return fig, ax, axc


def _shade_failed(axes: tuple[Any, ...], dq_windows: list[tuple[date, date, str]]) -> bool:
    """Shade the windows of partitions with failed error-level checks; True if any was shaded."""
    errors_shown = False
    for lo, hi, severity in dq_windows:
        if severity != "error":
            continue
        for axis in axes:
            axis.axvspan(lo, hi, color=_COLORS["error"], alpha=0.12, linewidth=0, zorder=0)
        errors_shown = True
    return errors_shown


def _draw_rv(fig: Figure, ax: Any, frame: pl.DataFrame, symbol: str) -> None:
    """The RV panel: daily RV, its rolling median, jump days, low-coverage days; the titles."""
    dates = frame["session_date"].to_list()
    positive = frame["rv"] > 0
    n = frame.height
    first, last = (dates[0], dates[-1]) if n else ("-", "-")
    ax.plot(
        [d for d, ok in zip(dates, positive, strict=True) if ok],
        frame["rv"].to_numpy()[positive.to_numpy()],
        color=_COLORS["rv"],
        linewidth=0.6,
        alpha=0.5,
        zorder=2,
    )
    ax.plot(dates, frame["rv_median"].to_numpy(), color=_COLORS["median"], linewidth=1.7, zorder=3)
    jumps = frame.filter(pl.col("jump") & (pl.col("rv") > 0))
    ax.scatter(
        jumps["session_date"].to_list(),
        jumps["rv"].to_numpy(),
        s=9,
        color=_COLORS["jump"],
        alpha=0.85,
        linewidth=0,
        zorder=4,
    )
    low = frame.filter(pl.col("low_coverage") & (pl.col("rv") > 0))
    ax.scatter(
        low["session_date"].to_list(),
        low["rv"].to_numpy(),
        s=60,
        facecolor="none",
        edgecolor=_COLORS["low"],
        linewidth=1.3,
        zorder=5,
    )
    ax.set_yscale("log")
    ax.set_ylabel("daily realized variance\n(sum of squared log returns)")
    fig.suptitle(
        f"{symbol}: daily realized variance, jumps and coverage",
        x=0.125,
        y=0.955,
        ha="left",
        fontsize=13,
        fontweight="bold",
    )
    ax.set_title(
        f"{n} sessions, {first} to {last}   \u2022   {int(frame['jump'].sum())} jump days "
        f"(BNS p < {JUMP_P_VALUE})   \u2022   {int(frame['low_coverage'].sum())} low-coverage days",
        loc="left",
        fontsize=9,
        color="#555555",
    )


def _legend_handles(coverage_threshold: float, errors_shown: bool) -> list[Any]:
    """Legend entries for what the chart draws."""
    handles: list[Any] = [
        Line2D([], [], color=_COLORS["rv"], linewidth=1, alpha=0.7, label="daily RV"),
        Line2D([], [], color=_COLORS["median"], linewidth=1.7, label=f"{ROLLING_SESSIONS}-session median"),
        Line2D([], [], marker="o", linestyle="", color=_COLORS["jump"], markersize=4, label="jump day"),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="none",
            markeredgecolor=_COLORS["low"],
            markersize=7,
            label=f"coverage < {coverage_threshold:g}",
        ),
    ]
    if errors_shown:
        handles.append(Patch(color=_COLORS["error"], alpha=0.3, label="partition failed DQ"))
    return handles


def _draw_coverage(axc: Any, frame: pl.DataFrame, coverage_threshold: float) -> None:
    """The coverage panel: dips below 1, low-coverage days and the threshold line."""
    dips = frame.filter(pl.col("coverage") < 1)
    axc.vlines(
        dips["session_date"].to_list(),
        dips["coverage"].to_numpy(),
        1.0,
        color=_COLORS["coverage"],
        linewidth=1.0,
    )
    axc.plot(frame["session_date"].to_list(), [1.0] * frame.height, color=_COLORS["coverage"], linewidth=0.8)
    low_all = frame.filter(pl.col("low_coverage"))
    axc.scatter(
        low_all["session_date"].to_list(),
        low_all["coverage"].to_numpy(),
        s=18,
        color=_COLORS["low"],
        zorder=4,
    )
    axc.axhline(coverage_threshold, color="#777777", linestyle="--", linewidth=0.8)
    axc.set_ylim(-0.03, 1.06)
    axc.set_ylabel("coverage\n(bars / expected)")
    axc.set_xlabel("session date (UTC)")


def _dq_windows(dq: pl.DataFrame, symbol: str) -> list[tuple[date, date, str]]:
    if dq.height == 0:
        return []
    failed = dq.filter(~pl.col("success"))
    worst: dict[tuple[date, date], str] = {}
    for partition, severity in failed.select("partition", "severity").iter_rows():
        if _partition_symbol(partition) != symbol:
            continue
        window = _partition_window(partition)
        if window is None:
            continue
        if worst.get(window) != "error":
            worst[window] = severity  # error wins over warning
    return [(lo, hi, sev) for (lo, hi), sev in sorted(worst.items())]


def _example(details: str | None) -> str:
    if not details:
        return ""
    try:
        parsed = json.loads(details)
    except (TypeError, ValueError):
        return details[:120]
    examples = parsed.get("examples") or []
    message = parsed.get("message") or ""
    text = message
    if examples:
        text += f"; e.g. {json.dumps(examples[0])}"
    return text[:240]


def latest_results(dq: pl.DataFrame) -> pl.DataFrame:
    """The newest outcome of every (suite, partition, check, column): reruns do not count twice."""
    if dq.height == 0:
        return dq
    key = ["suite", "partition", "expectation", "column_name"]
    order = ["created_at"] if "created_at" in dq.columns else []
    return dq.sort(order).unique(subset=key, keep="last", maintain_order=True) if order else dq.unique(key)


def dq_summary(dq: pl.DataFrame) -> pl.DataFrame:
    """Failed checks per (symbol, suite, check, column, severity): partitions, months, worst count.

    Errors first, then by symbol and the number of partitions affected; every symbol's warnings
    appear (the old report listed 200 rows and hid SPY's).
    """
    failed = latest_results(dq).filter(~pl.col("success")) if dq.height else dq
    cols = ["symbol", "suite", "check", "column", "severity", "partitions", "first", "last",
            "unexpected", "worst"]  # fmt: skip
    if failed.height == 0:
        return pl.DataFrame(schema=dict.fromkeys(cols, pl.String))
    parts = failed.with_columns(
        pl.col("partition").str.split("/").list.first().alias("symbol"),
        pl.col("partition").str.extract(r"(\d{4}-\d{2}-\d{2})", 1).str.slice(0, 7).alias("month"),
    )
    return (
        parts.group_by("symbol", "suite", "expectation", "column_name", "severity")
        .agg(
            pl.len().alias("partitions"),
            pl.col("month").min().alias("first"),
            pl.col("month").max().alias("last"),
            pl.col("unexpected_count").sum().alias("unexpected"),
            pl.col("unexpected_count").max().alias("worst"),
        )
        .rename({"expectation": "check", "column_name": "column"})
        .sort(pl.col("severity") != "error", "symbol", pl.col("partitions"), descending=[False, False, True])
        .select(cols)
    )


def _dq_table(dq: pl.DataFrame) -> list[str]:
    latest = latest_results(dq)
    failed = latest.filter(~pl.col("success")) if latest.height else latest
    if failed.height == 0:
        checked = latest.height
        return [f"All {checked} recorded checks passed." if checked else "No data-quality results recorded."]
    lines = [
        f"{int((failed['severity'] == 'error').sum())} errors and "
        f"{int((failed['severity'] == 'warning').sum())} warnings out of {latest.height} checks (the newest "
        "run of each partition), summarised per symbol and check. `volrisk quality show SYMBOL --detail` "
        "lists every failing partition.",
        "",
        "| symbol | severity | suite | check | column | partitions | first month | last month "
        "| unexpected (total) | worst partition |",
        "|---|---|---|---|---|---:|---|---|---:|---:|",
    ]
    for r in dq_summary(dq).iter_rows(named=True):
        severity = "**error**" if r["severity"] == "error" else "warning"
        lines.append(
            f"| {_md(r['symbol'])} | {severity} | {_md(r['suite'])} | {_md(r['check'])} | {_md(r['column'])} "
            f"| {r['partitions']} | {_md(r['first'])} | {_md(r['last'])} | {_md(r['unexpected'])} "
            f"| {_md(r['worst'])} |"
        )
    return lines


def write_quality_report(features: pl.DataFrame, dq: pl.DataFrame, out_dir: Path, title: str) -> Path:
    """Write the markdown data-quality report with one RV chart per symbol.

    Parameters
    ----------
    features : pl.DataFrame
        Daily features; needs ``symbol``, ``session_date``, ``rv`` and ``coverage``; uses ``bns_p``
        (or ``bns_pvalue``; else ``jv``/``jump_var``) for jump days and ``low_coverage`` if present.
    dq : pl.DataFrame
        Data-quality results in ``core.schema.DQ_SCHEMA`` (may be empty).
    out_dir : Path
        Folder for ``quality_report.md`` and the PNGs (created if needed).
    title : str
        Report heading.

    Returns
    -------
    Path
        The markdown file.

    Raises
    ------
    DataError
        If ``features`` lacks a required column.
    ConfigError
        If ``dq`` lacks the ``dq_results`` columns the report reads.
    """
    _check_report_inputs(features, dq)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    symbols = sorted(features["symbol"].drop_nulls().unique().to_list())
    lines = _report_header(title)
    sections: list[str] = []
    latest = latest_results(dq)
    failed = latest.filter(~pl.col("success")) if latest.height else latest
    for symbol in symbols:
        row, section = _symbol_report(features, dq, failed, symbol, out_dir)
        lines.append(row)
        sections += section
    if not symbols:
        lines.append("| (no features) | 0 | - | - | - | - | - | - | - |")
    lines += ["", *sections, "## Data-quality failures and warnings", "", *_dq_table(dq), ""]
    report = out_dir / "quality_report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _check_report_inputs(features: pl.DataFrame, dq: pl.DataFrame) -> None:
    """Raise DataError/ConfigError when a frame lacks a column the report reads."""
    required = ("symbol", "session_date", "rv", "coverage")
    missing = [c for c in required if c not in features.columns]
    if missing:
        raise DataError(f"features frame lacks columns {missing} needed by the quality report")
    dq_needed = ("suite", "partition", "expectation", "column_name", "severity", "success")
    if dq.height and [c for c in dq_needed if c not in dq.columns]:
        raise ConfigError(f"dq frame must have the dq_results columns {list(dq_needed)}; got {dq.columns}")


def _report_header(title: str) -> list[str]:
    """The heading, the definitions and the head of the summary table."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# {title}",
        "",
        f"Generated {generated}. Jump day: BNS jump test p-value < {JUMP_P_VALUE}. "
        "Coverage: bars present / bars expected in the session.",
        "",
        "## Summary",
        "",
        "| symbol | sessions | first | last | median RV | jump days | low-coverage days "
        "| DQ errors | DQ warnings |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]


def _symbol_report(
    features: pl.DataFrame, dq: pl.DataFrame, failed: pl.DataFrame, symbol: str, out_dir: Path
) -> tuple[str, list[str]]:
    """Draw one symbol's chart; return its summary-table row and its section of the report."""
    frame = prepare_symbol_frame(features, symbol)
    png = out_dir / f"{_slug(symbol)}_rv.png"
    plot_symbol(frame, symbol, png, _dq_windows(dq, symbol))
    mine = (
        failed.filter(pl.col("partition").str.split("/").list.first() == symbol) if failed.height else failed
    )
    n_err = int((mine["severity"] == "error").sum()) if mine.height else 0
    n_warn = int((mine["severity"] == "warning").sum()) if mine.height else 0
    first = str(frame["session_date"].min()) if frame.height else "-"
    last = str(frame["session_date"].max()) if frame.height else "-"
    row = (
        f"| {_md(symbol)} | {frame.height} | {first} | {last} | {_fmt_float(frame['rv'].median())} "
        f"| {int(frame['jump'].sum())} | {int(frame['low_coverage'].sum())} | {n_err} | {n_warn} |"
    )
    section = [f"## {symbol}", "", f"![{symbol} daily RV]({png.name})", ""]
    worst = frame.filter(pl.col("low_coverage")).sort("coverage").head(10)
    if worst.height:
        section += ["Lowest-coverage sessions:", "", "| session | coverage | RV |", "|---|---:|---:|"]
        section += [
            f"| {r['session_date']} | {r['coverage']:.2f} | {_fmt_float(r['rv'])} |"
            for r in worst.iter_rows(named=True)
        ]
        section.append("")
    return row, section
