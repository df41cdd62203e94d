"""Data-quality suites (tasks/quality.py) on real Binance BTC/USDT hourly bars.

The bars come from ``../shared/data/btcusdt_1h_binance`` (MIT, see its MANIFEST); tests that need them
skip when the folder is absent. Each bad-row test breaks one real row and checks that the verdict fails,
at error level, naming the expectation, the column and the row.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from repo_paths import REPO

from core.errors import ConfigError, DataError, WarehouseError
from core.schema import DQ_SCHEMA
from flows.steps.quality import check_bars_partition, check_features_partition
from tasks.quality import validate_bars, validate_features
from tasks.quality_bar_scores import RETURN_Z_COLUMN, add_return_zscore
from tasks.quality_gaps import gaps_outcome, missing_sessions_outcome
from tasks.quality_policy import QualityPolicy
from tasks.quality_results import QualityReport
from tasks.quality_suites import FEATURE_REQUIRED_COLUMNS
from tasks.quality_summary import artifact_key, artifact_table, dq_rows, task_summary
from tasks.quality_windows import parse_window, partition_label
from warehouse.quality import GAP_SCHEMA

DATA = REPO.parent / "shared" / "data"
BTC_CSV = DATA / "btcusdt_1h_binance" / "BTC_USDT-1h_binance_2017_2024.csv"
needs_data = pytest.mark.skipif(not BTC_CSV.is_file(), reason=f"real market data file {BTC_CSV} is absent")

START, END = datetime(2021, 10, 1, tzinfo=UTC), datetime(2021, 11, 1, tzinfo=UTC)


def _load_btc() -> pl.DataFrame:
    raw = pl.read_csv(BTC_CSV)
    return raw.select(
        pl.lit("BTC-USDT").alias("symbol"),
        pl.lit("1h").alias("interval"),
        pl.col("time_utc")
        .str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC")
        .dt.cast_time_unit("us")
        .alias("ts"),
        pl.col("open").cast(pl.Float64),
        pl.col("high").cast(pl.Float64),
        pl.col("low").cast(pl.Float64),
        pl.col("close").cast(pl.Float64),
        pl.col("volume").cast(pl.Float64),
        pl.lit("binance").alias("source"),
    )


@pytest.fixture(scope="module")
def btc_all() -> pl.DataFrame:
    if not BTC_CSV.is_file():
        pytest.skip(f"real market data file {BTC_CSV} is absent")
    return _load_btc()


@pytest.fixture(scope="module")
def month(btc_all: pl.DataFrame) -> pl.DataFrame:
    """October 2021: 744 real hourly bars, no gaps."""
    return btc_all.filter((pl.col("ts") >= START) & (pl.col("ts") < END))


def _set(frame: pl.DataFrame, row: int, **values: float) -> pl.DataFrame:
    idx = pl.int_range(pl.len())
    return frame.with_columns(
        [pl.when(idx == row).then(pl.lit(v)).otherwise(pl.col(c)).alias(c) for c, v in values.items()]
    )


def _failed(report: QualityReport, severity: str) -> dict[tuple[str, str], dict]:
    items = report.errors if severity == "error" else report.warnings
    return {(o.check, o.columns): o.to_dict() for o in items}


# --------------------------------------------------------------------------------------------------
# Clean data


@needs_data
def test_clean_real_partition_passes(month: pl.DataFrame) -> None:
    assert month.height == 744
    report = validate_bars(month, START, END)
    assert report.passed, report.summary()
    assert report.errors == []
    assert report.partition == "BTC-USDT/1h/2021-10-01..2021-11-01"
    assert report.row_count == 744
    checks = {o.check for o in report.outcomes}
    assert {"key_not_null", "price_positive", "high_ge_low", "high_ge_close", "low_le_open"} <= checks
    assert {"unique_key", "ts_in_window", "volume_non_negative", "return_outlier", "non_empty"} <= checks
    assert all(o.element_count == 744 for o in report.outcomes if o.check != "non_empty")


@needs_data
def test_real_crash_hour_is_flagged_not_failed(btc_all: pl.DataFrame) -> None:
    """March 2020 holds the real -20 % hour of 2020-03-12: a warning, never an error or a dropped row."""
    lo, hi = datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 4, 1, tzinfo=UTC)
    frame = btc_all.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
    report = validate_bars(frame, lo, hi)
    assert report.passed
    warned = _failed(report, "warning")
    outlier = warned[("return_outlier", RETURN_Z_COLUMN)]
    assert outlier["unexpected_count"] >= 1
    assert any(e["ts"].startswith("2020-03-12") for e in outlier["examples"])


# --------------------------------------------------------------------------------------------------
# Bad rows: each fails the right expectation at error level and names it


def _negative_price(frame: pl.DataFrame) -> pl.DataFrame:
    return _set(frame, 10, low=-1.0)


def _high_below_low(frame: pl.DataFrame) -> pl.DataFrame:
    row = frame.row(20, named=True)
    return _set(frame, 20, high=row["low"], low=row["high"])


def _close_above_high(frame: pl.DataFrame) -> pl.DataFrame:
    return _set(frame, 30, close=frame["high"][30] * 1.01)


def _duplicate_ts(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.slice(40, 1)])


def _ts_at_window_end(frame: pl.DataFrame) -> pl.DataFrame:
    extra = frame.slice(frame.height - 1, 1).with_columns(pl.lit(END).cast(frame.schema["ts"]).alias("ts"))
    return pl.concat([frame, extra])


def _ts_before_window(frame: pl.DataFrame) -> pl.DataFrame:
    extra = frame.slice(0, 1).with_columns(
        pl.lit(START - timedelta(hours=1)).cast(frame.schema["ts"]).alias("ts")
    )
    return pl.concat([extra, frame])


def _null_symbol(frame: pl.DataFrame) -> pl.DataFrame:
    idx = pl.int_range(pl.len())
    return frame.with_columns(pl.when(idx == 50).then(None).otherwise(pl.col("symbol")).alias("symbol"))


def _null_ts(frame: pl.DataFrame) -> pl.DataFrame:
    idx = pl.int_range(pl.len())
    return frame.with_columns(pl.when(idx == 60).then(None).otherwise(pl.col("ts")).alias("ts"))


BAD_ROWS = [
    pytest.param(_negative_price, ("price_positive", "low"), -1.0, id="negative-price"),
    pytest.param(_high_below_low, ("high_ge_low", "high,low"), None, id="high-below-low"),
    pytest.param(_close_above_high, ("high_ge_close", "high,close"), None, id="close-above-high"),
    pytest.param(_duplicate_ts, ("unique_key", "symbol,ts"), None, id="duplicate-ts"),
    pytest.param(_ts_at_window_end, ("ts_in_window", "ts"), END.isoformat(), id="ts-at-window-end"),
    pytest.param(
        _ts_before_window, ("ts_in_window", "ts"), (START - timedelta(hours=1)).isoformat(), id="ts-before"
    ),
    pytest.param(_null_symbol, ("key_not_null", "symbol"), None, id="null-symbol"),
    pytest.param(_null_ts, ("key_not_null", "ts"), None, id="null-ts"),
]


@needs_data
@pytest.mark.parametrize(("corrupt", "expected", "value"), BAD_ROWS)
def test_bad_row_fails_named_expectation(month: pl.DataFrame, corrupt, expected, value) -> None:
    frame = corrupt(month)
    report = validate_bars(frame, START, END, partition="BTC-USDT/1h/2021-10")
    assert not report.passed
    errors = _failed(report, "error")
    assert expected in errors, f"{expected} not among errors {sorted(errors)}"
    failure = errors[expected]
    assert failure["severity"] == "error"
    assert failure["unexpected_count"] >= 1
    assert failure["examples"], "a failure names example rows"
    assert expected[0] in failure["message"]
    assert "BTC-USDT/1h/2021-10" in report.summary() and expected[0] in report.summary()
    if value is not None:
        assert value in [e["value"] for e in failure["examples"]]
    # Examples carry the real row number and its timestamp.
    example = failure["examples"][0]
    assert isinstance(example["row"], int) and 0 <= example["row"] < frame.height


@needs_data
def test_example_points_at_corrupted_row(month: pl.DataFrame) -> None:
    report = validate_bars(_close_above_high(month), START, END)
    example = _failed(report, "error")[("high_ge_close", "high,close")]["examples"][0]
    assert example["row"] == 30
    assert example["ts"] == month["ts"][30].isoformat()
    high, close = example["value"]
    assert close > high


@needs_data
def test_validation_does_not_modify_or_drop(month: pl.DataFrame) -> None:
    frame = _duplicate_ts(_negative_price(month))
    before = frame.clone()
    validate_bars(frame, START, END)
    assert frame.equals(before)


# --------------------------------------------------------------------------------------------------
# Outliers: flagged as a warning, the row stays


@needs_data
def test_outlier_is_warning_and_row_is_kept(month: pl.DataFrame) -> None:
    row = 100
    spike = month["close"][row] * 1.5
    frame = _set(month, row, close=spike, high=spike)
    report = validate_bars(frame, START, END)
    assert report.passed, report.summary()
    warned = _failed(report, "warning")
    outlier = warned[("return_outlier", RETURN_Z_COLUMN)]
    assert outlier["severity"] == "warning"
    flagged_ts = {e["ts"] for e in outlier["examples"]}
    assert month["ts"][row].isoformat() in flagged_ts
    scored = add_return_zscore(frame)
    assert scored.height == frame.height
    assert scored.drop(RETURN_Z_COLUMN).equals(frame)
    assert scored[RETURN_Z_COLUMN][row] > 10
    assert scored["close"][row] == spike


@needs_data
def test_zscore_ignores_row_order(month: pl.DataFrame) -> None:
    sorted_z = add_return_zscore(month)[RETURN_Z_COLUMN]
    shuffled = month.with_row_index("i").sample(fraction=1.0, shuffle=True, seed=7)
    z = add_return_zscore(shuffled.drop("i")).with_columns(shuffled["i"]).sort("i")[RETURN_Z_COLUMN]
    assert (sorted_z - z).abs().max() < 1e-9  # type: ignore[operator]
    assert sorted_z.null_count() == 1  # the first bar has no return


def test_zscore_constant_prices_gives_nulls() -> None:
    ts = [datetime(2021, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(5)]
    frame = pl.DataFrame({"symbol": "X", "interval": "1h", "ts": ts, "close": [1.0] * 5})
    assert add_return_zscore(frame)[RETURN_Z_COLUMN].null_count() == 5


# --------------------------------------------------------------------------------------------------
# Severity policy


@needs_data
def test_severity_override_turns_error_into_warning(month: pl.DataFrame) -> None:
    bad = _negative_price(month)
    assert not validate_bars(bad, START, END).passed
    report = validate_bars(bad, START, END, policy={"severities": {"price_positive": "warning"}})
    assert report.passed
    assert ("price_positive", "low") in _failed(report, "warning")


@needs_data
def test_severity_override_by_suite_and_column(month: pl.DataFrame) -> None:
    bad = _close_above_high(month)
    policy = QualityPolicy.from_yaml("severities:\n  bars.high_ge_close:high,close: warning\n")
    report = validate_bars(bad, START, END, policy=policy)
    assert report.passed
    assert ("high_ge_close", "high,close") in _failed(report, "warning")
    # Raising a warning to an error works the same way.
    strict = validate_bars(month.with_columns(pl.lit(-1.0).alias("volume")), START, END)
    assert strict.passed
    strict = validate_bars(
        month.with_columns(pl.lit(-1.0).alias("volume")),
        START,
        END,
        policy={"severities": {"volume_non_negative": "error"}},
    )
    assert not strict.passed
    assert ("volume_non_negative", "volume") in _failed(strict, "error")


def test_policy_defaults_and_precedence() -> None:
    policy = QualityPolicy(
        severities={
            "unique_key": "warning",
            "daily_features.unique_key": "error",
            "key_not_null:ts": "warning",
        }
    )
    assert QualityPolicy().severity("bars", "high_ge_close") == "error"
    assert QualityPolicy().severity("bars", "return_outlier") == "warning"
    assert QualityPolicy().severity("bars", "volume_non_negative", "volume") == "warning"
    assert policy.severity("bars", "unique_key", "symbol,ts") == "warning"
    assert policy.severity("daily_features", "unique_key", "symbol,session_date") == "error"
    assert policy.severity("bars", "key_not_null", "ts") == "warning"
    assert policy.severity("bars", "key_not_null", "symbol") == "error"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"severities": {"price_positve": "warning"}}, "price_positve"),
        ({"severities": {"price_positive": "fatal"}}, "severities"),
        ({"severities": {"nosuite.unique_key": "warning"}}, "nosuite"),
        ({"outlier_sigmas": -1}, "outlier_sigmas"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_policy_is_config_error(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        QualityPolicy.from_mapping(data)


def test_policy_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "dq.yaml"
    path.write_text("severities:\n  return_outlier: error\noutlier_sigmas: 8\n", encoding="utf-8")
    policy = QualityPolicy.from_yaml(path)
    assert policy.outlier_sigmas == 8
    assert policy.severity("bars", "return_outlier") == "error"
    with pytest.raises(ConfigError, match="does not exist"):
        QualityPolicy.from_yaml(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------------------------------
# Plain, serializable results


@needs_data
def test_results_are_plain_json(month: pl.DataFrame) -> None:
    report = validate_bars(_duplicate_ts(_negative_price(month)), START, END)
    report = report.with_outcomes([gaps_outcome(pl.DataFrame(schema=GAP_SCHEMA), None, month.height)])
    as_dict = report.to_dict()
    text = json.dumps(as_dict, allow_nan=False)
    assert json.loads(text) == as_dict
    summary = task_summary(report, n_gaps=0)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary["passed"] is False and summary["n_errors"] == len(summary["errors"]) >= 2
    json.dumps(artifact_table(report), allow_nan=False)

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or type(value) in (str, int, float, bool)

    assert plain(as_dict) and plain(summary)


@needs_data
def test_dq_rows_match_schema(month: pl.DataFrame) -> None:
    report = validate_bars(_negative_price(month), START, END)
    rows = dq_rows(report, "run-1")
    assert rows.schema == pl.Schema(DQ_SCHEMA)
    assert rows.height == len(report.outcomes)
    assert rows.filter(pl.col("expectation") == "non_empty")["column_name"].to_list() == ["*"]
    failed = rows.filter(~pl.col("success"))
    assert failed.filter(pl.col("severity") == "error")["expectation"].to_list() == ["price_positive"]
    details = json.loads(failed["details"][0])
    assert details["examples"][0]["value"] == -1.0
    with pytest.raises(ConfigError, match="run_id"):
        dq_rows(report, "")


# --------------------------------------------------------------------------------------------------
# Daily features suite


@pytest.fixture(scope="module")
def features(btc_all: pl.DataFrame) -> pl.DataFrame:
    build = pytest.importorskip("tasks.features").build_daily_features
    bars = btc_all.filter((pl.col("ts") >= datetime(2018, 1, 1, tzinfo=UTC)) & (pl.col("ts") < START))
    return build(bars, "24x7", "1h")


@needs_data
def test_real_features_pass(features: pl.DataFrame) -> None:
    assert set(FEATURE_REQUIRED_COLUMNS) <= set(features.columns), "align FEATURE_REQUIRED_COLUMNS"
    report = validate_features(features, "BTC-USDT/v1/2018-01-01..2021-10-01")
    assert report.passed, report.summary()
    # The 34-hour Binance outage leaves 2018-02-08 with 1 of 24 bars: a coverage warning.
    low = _failed(report, "warning")[("coverage_low", "coverage")]
    assert {"row", "symbol", "session_date", "value"} <= set(low["examples"][0])
    assert "2018-02-08" in [e["session_date"] for e in low["examples"]]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("rv", float("nan"), ("required_not_null", "rv")),
        ("rv", None, ("required_not_null", "rv")),
        ("rv", -1e-6, ("rv_non_negative", "rv")),
        ("rv", float("inf"), ("rv_non_negative", "rv")),
        ("bv", -1e-6, ("bv_non_negative", "bv")),
        ("coverage", 1.5, ("coverage_in_unit_interval", "coverage")),
        ("n_bars", None, ("required_not_null", "n_bars")),
    ],
)
@needs_data
def test_bad_feature_row_fails(features: pl.DataFrame, column: str, value: float | None, expected) -> None:
    idx = pl.int_range(pl.len())
    bad = features.with_columns(
        pl.when(idx == 3)
        .then(pl.lit(value))
        .otherwise(pl.col(column))
        .cast(features.schema[column])
        .alias(column)
    )
    report = validate_features(bad, "BTC-USDT/v1/test")
    assert not report.passed
    errors = _failed(report, "error")
    assert expected in errors, sorted(errors)
    assert errors[expected]["examples"][0]["session_date"] == features["session_date"][3].isoformat()


@needs_data
def test_duplicate_feature_key_fails(features: pl.DataFrame) -> None:
    report = validate_features(pl.concat([features, features.slice(5, 1)]), "BTC-USDT/v1/test")
    assert ("unique_key", "symbol,session_date") in _failed(report, "error")


def test_missing_columns_is_data_error_naming_partition() -> None:
    frame = pl.DataFrame({"symbol": ["X"], "session_date": [date(2021, 1, 1)], "rv": [1.0]})
    with pytest.raises(DataError, match=r"X/v1/2021.*lacks columns \['bv', 'coverage', 'close', 'n_bars'\]"):
        validate_features(frame, "X/v1/2021")
    with pytest.raises(DataError, match="bars frame lacks columns"):
        validate_bars(frame, "2021-01-01", "2021-02-01")


def test_empty_bars_partition_warns() -> None:
    from core.schema import empty_bars

    report = validate_bars(empty_bars(), "2021-01-01", "2021-02-01", partition="X/1h/empty")
    assert report.passed
    assert ("non_empty", "") in _failed(report, "warning")


# --------------------------------------------------------------------------------------------------
# Small helpers


def test_window_parsing_and_labels() -> None:
    lo, hi = parse_window("2020-01-01", "2020-02-01T00:00:00Z")
    assert lo == datetime(2020, 1, 1, tzinfo=UTC) and hi == datetime(2020, 2, 1, tzinfo=UTC)
    assert partition_label("BTC-USDT", "1h", lo, hi) == "BTC-USDT/1h/2020-01-01..2020-02-01"
    assert partition_label("X", "1m", lo + timedelta(hours=1), hi).startswith("X/1m/2020-01-01T01:00:00Z..")
    with pytest.raises(ConfigError, match="start"):
        parse_window("2020-13-01", "2020-02-01")
    with pytest.raises(ConfigError, match="must be before end"):
        parse_window("2020-02-01", "2020-01-01")


@pytest.mark.parametrize(
    ("suite", "symbol", "interval", "key"),
    [
        ("bars", "BTC-USDT", "1h", "dq-bars-btc-usdt-1h"),
        ("bars", "EURUSD=X", "1m", "dq-bars-eurusd-x-1m"),
        ("bars", "^GSPC", None, "dq-bars-gspc"),
        ("daily_features", "BRK_B", "v1", "dq-features-brk-b-v1"),
    ],
)
def test_artifact_key_is_lowercase_dashes(suite: str, symbol: str, interval: str | None, key: str) -> None:
    out = artifact_key(suite, symbol, interval)
    assert out == key
    assert all(c.islower() or c.isdigit() or c == "-" for c in out)


def test_sql_outcomes() -> None:
    gaps = pl.DataFrame(
        {
            "symbol": ["X", "X"],
            "interval": ["1h", "1h"],
            "gap_start": [datetime(2018, 2, 8, tzinfo=UTC), datetime(2018, 3, 1, tzinfo=UTC)],
            "gap_end": [datetime(2018, 2, 9, 10, tzinfo=UTC), datetime(2018, 3, 1, 3, tzinfo=UTC)],
            "length": [timedelta(hours=34), timedelta(hours=3)],
            "missing_bars": [33, 2],
        },
        schema=GAP_SCHEMA,
    )
    outcome = gaps_outcome(gaps)
    assert not outcome.success and outcome.severity == "warning"
    assert outcome.examples[0]["hours"] == 34.0 and outcome.observed_value["missing_bars"] == 35
    missing = pl.DataFrame({"session_date": [date(2021, 1, 3)]})
    outcome = missing_sessions_outcome(missing, 10, QualityPolicy(severities={"missing_sessions": "error"}))
    assert outcome.severity == "error" and outcome.unexpected_count == 1
    assert outcome.examples == [{"session_date": "2021-01-03"}]


def test_entry_points_reject_bad_parameters_before_any_work(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.duckdb")
    with pytest.raises(WarehouseError, match="does not exist"):
        check_bars_partition.fn(missing, "BTC-USDT", "1h", "2021-01-01", "2021-02-01", "v", "r")
    with pytest.raises(WarehouseError, match="does not exist"):
        check_features_partition.fn(missing, "BTC-USDT", "2021-01-01", "2021-02-01", "v", "r")
    assert not (tmp_path / "nope.duckdb").exists()
    existing = tmp_path / "w.duckdb"
    existing.write_bytes(b"")
    with pytest.raises(ConfigError, match="interval"):
        check_bars_partition.fn(str(existing), "BTC-USDT", "2h", "2021-01-01", "2021-02-01", "v", "r")
    with pytest.raises(ConfigError, match="symbol"):
        check_bars_partition.fn(str(existing), "BTC/USDT", "1h", "2021-01-01", "2021-02-01", "v", "r")
    with pytest.raises(ConfigError, match="end"):
        check_bars_partition.fn(str(existing), "BTC-USDT", "1h", "2021-01-01", "soon", "v", "r")


# ------------------------------------------------------------------ issue 14: stale bars, session gaps
SAMPLES = REPO / "data" / "samples"


def _month(
    file: str, symbol: str, fmt: str | None, year: int, month: int
) -> tuple[pl.DataFrame, datetime, datetime]:
    from tasks.sources.files import read_bars_file

    lo = datetime(year, month, 1, tzinfo=UTC)
    hi = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    bars = read_bars_file(SAMPLES / file, symbol=symbol, fmt=fmt).bars
    return bars.filter(pl.col("ts").is_between(lo, hi, closed="left")), lo, hi


def _freeze(bars: pl.DataFrame, share: float, seed: int = 1) -> pl.DataFrame:
    """Make ``share`` of the bars repeat the previous close with no range (a frozen feed)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.arange(1, bars.height), int(share * bars.height), replace=False))
    close = bars["close"].to_numpy().copy()
    for i in rows:
        close[i] = close[i - 1]
    frozen = np.zeros(bars.height, bool)
    frozen[rows] = True
    price = pl.Series(close)
    return bars.with_columns(
        [
            pl.when(pl.Series(frozen)).then(price).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close")
        ]
    )


def test_a_month_of_27_percent_frozen_bars_fails_the_gate_and_the_real_month_passes() -> None:
    bars, lo, hi = _month("BTC_USDT-1h_binance_2017_2024.csv", "BTC-USDT", None, 2020, 3)
    clean = validate_bars(bars, lo, hi)
    assert clean.passed and not {o.check for o in clean.outcomes if not o.success} & {
        "stale_bars", "stale_bars_severe", "repeated_close"
    }  # fmt: skip
    frozen = validate_bars(_freeze(bars, 0.27), lo, hi)
    assert not frozen.passed  # it passed with 0 errors before (issue 14)
    severe = next(o for o in frozen.errors if o.check == "stale_bars_severe")
    assert severe.unexpected_count == int(0.27 * bars.height)
    assert "stale_bars" in {o.check for o in frozen.warnings}
    mild = validate_bars(_freeze(bars, 0.12), lo, hi)  # a warning, not a blocked month
    assert mild.passed and "stale_bars" in {o.check for o in mild.warnings}
    few = _freeze(bars.head(40), 0.5)  # a partition of 40 bars: its share says nothing
    assert validate_bars(few, lo, hi).passed


def test_spy_minute_bars_with_extended_hours_raise_no_stale_warning() -> None:
    bars, lo, hi = _month("nt-spy-minute-2011-01.csv", "SPY", "ninjatrader", 2011, 1)
    report = validate_bars(bars, lo, hi)
    assert not {o.check for o in report.outcomes if not o.success} & {"stale_bars", "stale_bars_severe"}
    tail, lo2, hi2 = _month(
        "nt-spy-minute-2011-01.csv", "SPY", "ninjatrader", 2011, 2
    )  # 36 bars of Feb 1 UTC
    assert tail.height == 36 and validate_bars(tail, lo2, hi2).passed  # was blocked: stale_bars_severe


def test_a_long_run_of_one_close_is_flagged() -> None:
    bars, lo, hi = _month("BTC_USDT-1h_binance_2017_2024.csv", "BTC-USDT", None, 2020, 3)
    stuck = bars.with_columns(
        pl.when(pl.int_range(pl.len()).is_between(100, 160))
        .then(pl.lit(6000.0))
        .otherwise(pl.col(c))
        .alias(c)
        for c in ("close",)
    ).with_columns(
        pl.max_horizontal("high", "close").alias("high"), pl.min_horizontal("low", "close").alias("low")
    )
    report = validate_bars(stuck, lo, hi)
    run = next(o for o in report.warnings if o.check == "repeated_close")
    assert run.unexpected_count == 61 - 30  # bars beyond the 30th of the 61-bar run


@pytest.mark.parametrize(
    ("file", "symbol", "fmt", "calendar", "year", "month"),
    [
        ("eurusd_oanda_hour.csv.gz", "EURUSD", "lean_fx", "fx", 2017, 3),  # weekends
        ("spy_hour_1998_2021.csv", "SPY", "lean_equity", "XNYS", 2019, 7),  # nights, July 4, early close
    ],
)
def test_gaps_count_only_inside_sessions(
    file: str, symbol: str, fmt: str, calendar: str, year: int, month: int, tmp_path: Path
) -> None:
    from tasks.quality_calendar import in_session_gaps, session_windows
    from warehouse.bars import upsert_bars
    from warehouse.db import session
    from warehouse.quality import find_gaps

    bars, lo, hi = _month(file, symbol, fmt, year, month)
    # Take out five hours in the middle of the month's 10th session: a real gap.
    day = next(d for d in sorted(bars["ts"].dt.date().unique().to_list()) if d.day >= 10 and d.weekday() == 2)
    todays = bars.filter(pl.col("ts").dt.date() == day).sort("ts")["ts"].to_list()
    hole = todays[1:4] if calendar == "XNYS" else todays[5:10]
    with session(tmp_path / "w.duckdb") as con:
        upsert_bars(con, bars.filter(~pl.col("ts").is_in(hole)), "t")
        raw = find_gaps(con, symbol, "1h", lo, hi)
    windows = session_windows(calendar, lo, hi)
    kept = in_session_gaps(raw, windows, 3600)
    assert raw.height >= 5  # the hole + weekends / nights / holidays: every month warned before (issue 14)
    assert kept.height == 1 and kept["missing_bars"][0] == len(hole)
    assert kept["gap_start"][0] < hole[0] < kept["gap_end"][0]
    assert in_session_gaps(raw, None, 3600).equals(raw)  # 24x7: every gap counts
