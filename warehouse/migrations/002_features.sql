-- Daily features per (symbol, session) and rolling cross-asset correlations (tasks/features.py).
-- Written by warehouse/features.py: one transaction per partition that deletes the partition's date
-- range and inserts the new rows, so a rerun replaces rather than duplicates. Small tables: the
-- PRIMARY KEY also guards the natural key.
CREATE TABLE IF NOT EXISTS features_daily (
    symbol              VARCHAR     NOT NULL,
    session_date        DATE        NOT NULL,
    feature_set_version VARCHAR     NOT NULL,
    interval            VARCHAR     NOT NULL,   -- native bar interval
    sampling_interval   VARCHAR     NOT NULL,   -- grid of the intraday returns (interval or resample)
    session_end         TIMESTAMPTZ NOT NULL,   -- UTC instant after which every input of the row is known
    open                DOUBLE      NOT NULL,
    high                DOUBLE      NOT NULL,
    low                 DOUBLE      NOT NULL,
    close               DOUBLE      NOT NULL,
    volume              DOUBLE,
    ret_cc              DOUBLE,                 -- log close/prev close; NULL when the previous session has no bars
    ret_oc              DOUBLE      NOT NULL,
    ret_overnight       DOUBLE,                 -- log open/prev close
    n_bars              BIGINT      NOT NULL,
    expected_bars       BIGINT      NOT NULL,
    coverage            DOUBLE      NOT NULL CHECK (coverage BETWEEN 0 AND 1),
    low_coverage        BOOLEAN     NOT NULL,
    n_returns           BIGINT      NOT NULL,
    rv                  DOUBLE      NOT NULL,
    bv                  DOUBLE      NOT NULL,
    jv                  DOUBLE      NOT NULL,
    rq                  DOUBLE      NOT NULL,
    tq                  DOUBLE,                 -- NULL when fewer than 3 returns
    rs_pos              DOUBLE      NOT NULL,
    rs_neg              DOUBLE      NOT NULL,
    bns_z               DOUBLE,
    bns_p               DOUBLE,
    jump_count          BIGINT      NOT NULL,
    rv_d                DOUBLE      NOT NULL,
    rv_w                DOUBLE,
    rv_m                DOUBLE,
    PRIMARY KEY (symbol, session_date, feature_set_version)
);

CREATE TABLE IF NOT EXISTS cross_asset_daily (
    session_date        DATE    NOT NULL,
    symbol_a            VARCHAR NOT NULL,
    symbol_b            VARCHAR NOT NULL,
    feature_set_version VARCHAR NOT NULL,
    "window"            BIGINT  NOT NULL,   -- rolling window in common sessions
    corr_ret            DOUBLE,
    corr_logrv          DOUBLE,
    CHECK (symbol_a < symbol_b),
    PRIMARY KEY (session_date, symbol_a, symbol_b, feature_set_version, "window")
);
