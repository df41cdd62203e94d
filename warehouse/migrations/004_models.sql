-- Model runs and their predictions (tasks/models, tasks/train.py). Written by warehouse/models.py,
-- which upserts on the natural keys in one transaction per call, so a rerun changes nothing.
--   model_runs   one row per trained model: its registry name, symbols, training window, config
--                (and its hash), the data version it saw, validation metrics, device, wall time and
--                checkpoint path.
--   predictions  one row per (model_run, symbol, origin, horizon) in tasks.models.base.PREDICTION_SCHEMA:
--                the target session's return variance (var), RV forecast (rv), mean, the nine return
--                quantiles, the distribution family and its parameters (JSON). fold is the walk-forward
--                fold that produced the row, NULL outside walk-forward.
-- No foreign key from predictions to model_runs: DuckDB cannot update a referenced row, and a
-- model_runs upsert must stay possible after predictions exist.
CREATE TABLE IF NOT EXISTS model_runs (
    model_run     VARCHAR     PRIMARY KEY,
    model         VARCHAR     NOT NULL,
    symbols       JSON,
    train_start   DATE,
    train_end     DATE,
    config        JSON,
    config_hash   VARCHAR,
    data_version  VARCHAR,
    metrics       JSON,
    device        VARCHAR,
    wall_s        DOUBLE,
    checkpoint    VARCHAR,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS predictions (
    model_run   VARCHAR     NOT NULL,
    model       VARCHAR     NOT NULL,
    symbol      VARCHAR     NOT NULL,
    origin      DATE        NOT NULL,
    target      DATE        NOT NULL,
    horizon     INTEGER     NOT NULL CHECK (horizon >= 1),
    fold        INTEGER,
    var         DOUBLE,
    rv          DOUBLE,
    mean        DOUBLE,
    q01         DOUBLE,
    q025        DOUBLE,
    q05         DOUBLE,
    q10         DOUBLE,
    q50         DOUBLE,
    q90         DOUBLE,
    q95         DOUBLE,
    q975        DOUBLE,
    q99         DOUBLE,
    family      VARCHAR     NOT NULL,
    params      JSON,
    created_at  TIMESTAMPTZ NOT NULL,
    CHECK (target > origin),
    PRIMARY KEY (model_run, symbol, origin, horizon)
);
