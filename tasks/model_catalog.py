"""Names of the built-in models, known without importing them (torch takes seconds to load).

The command line checks ``-m NAME`` against this catalogue before anything heavy starts; a test keeps
it equal to the registry that importing :mod:`tasks.models` fills.
"""

from __future__ import annotations

#: Registry name -> what the model is.
BUILTIN_MODELS: dict[str, str] = {
    "naive": "baseline: yesterday's RV",
    "ewma": "baseline: RiskMetrics EWMA of squared returns",
    "har": "baseline: HAR-RV (Corsi 2009) on log RV",
    "har_j": "baseline: HAR-RV with a jump component",
    "garch": "econometric: GARCH(1,1) (arch)",
    "gjr_garch": "econometric: GJR-GARCH(1,1,1) (arch)",
    "quantile": "neural: return-quantile network (pinball loss)",
    "quantile_event": "neural: return-quantile network conditioned on economic events",
    "voltransformer": "neural: Transformer on returns",
    "prob_lstm": "neural: probabilistic LSTM (Gaussian or Student-t likelihood)",
    "lstm_point": "neural: LSTM point forecast of log RV",
    "ensemble": "stack: LightGBM over the other models' out-of-fold forecasts",
}
