-- Walk-forward evaluations (tasks/evaluate.py, flows/evaluate_flow.py). Written by warehouse/evaluations.py.
--   evaluations   one row per evaluation run, keyed on its name: the parameters, the model runs whose
--                 out-of-fold predictions it scored (so stacking and reports reuse them instead of
--                 recomputing), the stacking decision per asset class and the report's paths.
CREATE TABLE IF NOT EXISTS evaluations (
    name         VARCHAR     PRIMARY KEY,
    params       JSON        NOT NULL,
    runs         JSON        NOT NULL,
    stacking     JSON,
    report       VARCHAR,
    passed_gates BOOLEAN,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
