-- Core tables: instruments, bars, ingest log and quarantine.
-- bars' natural key is (symbol, interval, ts). It is enforced by the write path in warehouse/bars.py
-- (staged anti-join upsert in one transaction per partition) rather than by a PRIMARY KEY index:
-- DuckDB's ART index caps bulk writes near 1M rows/s on this hardware, against 2-4M without it.
-- `volrisk warehouse check` and the test-suite verify uniqueness.
CREATE TABLE IF NOT EXISTS warehouse_meta (
    key    VARCHAR PRIMARY KEY,
    value  VARCHAR NOT NULL
);
-- A fresh identity per warehouse file: task cache keys include it, so a rebuilt warehouse never
-- takes a cache hit from an old one.
INSERT INTO warehouse_meta VALUES ('warehouse_id', CAST(uuid() AS VARCHAR)) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS instruments (
    symbol          VARCHAR PRIMARY KEY,
    asset_class     VARCHAR NOT NULL CHECK (asset_class IN ('crypto', 'fx', 'equity_index', 'commodity')),
    calendar        VARCHAR NOT NULL,
    quote_currency  VARCHAR,
    default_source  VARCHAR
);

CREATE TABLE IF NOT EXISTS bars (
    symbol      VARCHAR   NOT NULL,
    interval    VARCHAR   NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,   -- UTC, bar start
    open        DOUBLE    NOT NULL,
    high        DOUBLE    NOT NULL,
    low         DOUBLE    NOT NULL,
    close       DOUBLE    NOT NULL,
    volume      DOUBLE,
    source      VARCHAR   NOT NULL,
    ingest_run  VARCHAR   NOT NULL
);

CREATE TABLE IF NOT EXISTS ingest_log (
    source          VARCHAR NOT NULL,
    symbol          VARCHAR NOT NULL,
    interval        VARCHAR NOT NULL,
    window_start    TIMESTAMPTZ NOT NULL,
    window_end      TIMESTAMPTZ NOT NULL,
    run_id          VARCHAR NOT NULL,
    location        VARCHAR,
    rows            BIGINT  NOT NULL DEFAULT 0,
    rows_new        BIGINT  NOT NULL DEFAULT 0,
    rows_updated    BIGINT  NOT NULL DEFAULT 0,
    rows_unchanged  BIGINT  NOT NULL DEFAULT 0,
    rows_quarantined BIGINT NOT NULL DEFAULT 0,
    checksum        VARCHAR,
    status          VARCHAR NOT NULL CHECK (status IN ('running', 'success', 'failed', 'skipped')),
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    error           VARCHAR,
    PRIMARY KEY (source, symbol, interval, window_start, window_end)
);

CREATE TABLE IF NOT EXISTS quarantine (
    location    VARCHAR NOT NULL,   -- file:line, or the request
    reason      VARCHAR NOT NULL,
    raw         VARCHAR,
    source      VARCHAR NOT NULL,
    symbol      VARCHAR,
    run_id      VARCHAR NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (location, reason)
);

CREATE TABLE IF NOT EXISTS realized_daily (
    symbol        VARCHAR NOT NULL,
    date          DATE    NOT NULL,
    source        VARCHAR NOT NULL,
    rv            DOUBLE,
    bv            DOUBLE,
    rk_parzen     DOUBLE,
    medrv         DOUBLE,
    ret           DOUBLE,      -- open-to-close log return where the file has it
    close_price   DOUBLE,
    nobs          BIGINT,
    extra         JSON,        -- every other numeric column of the input, by name
    ingest_run    VARCHAR NOT NULL,
    PRIMARY KEY (symbol, date, source)
);
