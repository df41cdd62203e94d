-- Data-quality results: one row per (run, suite, partition, expectation, column).
-- Written by warehouse/quality.py::write_dq_results, which upserts on the key, so writing the same
-- results twice changes nothing (created_at is kept unless the outcome itself changed).
--   partition    e.g. 'BTC-USDT/1h/2020-01-01..2020-02-01'
--   expectation  the volrisk check name (e.g. 'high_ge_close'); the GX expectation type is in details
--   column_name  the column, columns joined by ',' for multi-column checks, '*' for table-level ones
--   severity     the level the run's QualityPolicy gave this check
--   observed_value, details  JSON text (examples of unexpected values, message, GX type, ...)
CREATE TABLE IF NOT EXISTS dq_results (
    run_id            VARCHAR     NOT NULL,
    suite             VARCHAR     NOT NULL,
    partition         VARCHAR     NOT NULL,
    expectation       VARCHAR     NOT NULL,
    column_name       VARCHAR     NOT NULL,
    severity          VARCHAR     NOT NULL CHECK (severity IN ('error', 'warning')),
    success           BOOLEAN     NOT NULL,
    observed_value    JSON,
    unexpected_count  BIGINT,
    element_count     BIGINT,
    details           JSON,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, suite, partition, expectation, column_name)
);
