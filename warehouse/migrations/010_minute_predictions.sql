-- Minute mode (tasks/minute_risk.py): one row per backtest run and its hold-out predictions.
-- Written by warehouse/minute_risk.py, one transaction per (run_id, symbol): a rerun of the same
-- run replaces its rows with identical ones.
--   minute_runs         the run: symbol, the spec (models, calibration, seasonality, split), run facts
--                       (sizes, span, wall time), the summary rows, the recommended (model, variant),
--                       the report path.
--   minute_predictions  per (run, symbol, model, variant, minute ts, horizon in minutes): the realized
--                       one-minute return, the seasonal factor, the variance forecast, the nine return
--                       quantiles, VaR 95/99 and ES 97.5. variant is 'raw' (no seasonality),
--                       'deseasonalised' or 'calibrated' (online ACI/DtACI on top).
CREATE TABLE IF NOT EXISTS minute_runs (
    run_id       VARCHAR     PRIMARY KEY,
    symbol       VARCHAR     NOT NULL,
    spec         JSON,
    meta         JSON,
    summary      JSON,
    recommended  JSON,
    report       VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS minute_predictions (
    run_id           VARCHAR     NOT NULL,
    symbol           VARCHAR     NOT NULL,
    model            VARCHAR     NOT NULL,
    variant          VARCHAR     NOT NULL,
    ts               TIMESTAMPTZ NOT NULL,
    horizon_minutes  INTEGER     NOT NULL CHECK (horizon_minutes >= 1),
    ret              DOUBLE,
    season           DOUBLE,
    variance         DOUBLE,
    q01              DOUBLE,
    q025             DOUBLE,
    q05              DOUBLE,
    q10              DOUBLE,
    q50              DOUBLE,
    q90              DOUBLE,
    q95              DOUBLE,
    q975             DOUBLE,
    q99              DOUBLE,
    var95            DOUBLE,
    var99            DOUBLE,
    es975            DOUBLE,
    PRIMARY KEY (run_id, symbol, model, variant, ts, horizon_minutes)
);
