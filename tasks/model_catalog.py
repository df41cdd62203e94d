"""The built-in models: names, what they are, and the module that registers each.

Known without importing any model (torch takes seconds to load): the command line checks ``-m NAME``
against this catalogue before anything heavy starts, and :func:`tasks.models.base.get_model` imports a
model's module only when it is first asked for. A test keeps the catalogue equal to the registry.
"""

from __future__ import annotations

#: Registry name -> what the model is.
BUILTIN_MODELS: dict[str, str] = {
    "naive": "baseline: yesterday's RV",
    "ewma": "baseline: RiskMetrics EWMA of squared returns",
    "har": "baseline: HAR-RV (Corsi 2009) on log RV",
    "har_j": "baseline: HAR-RV with a jump component",
    "lhar": "econometric: LHAR, log HAR-RV plus daily/weekly/monthly negative returns (Corsi & Reno 2012)",
    "har_wls": "econometric: HAR-RV in levels by WLS, weights 1/fitted (Clements & Preve 2021)",
    "harq": "econometric: HARQ, daily lag scaled by sqrt(RQ), insanity filter (Bollerslev et al. 2016)",
    "harq_f": "econometric: HARQ-F, all three lags scaled by sqrt(RQ) (Bollerslev et al. 2016)",
    "shar": "econometric: semivariance HAR (Patton & Sheppard 2015)",
    "har_cj": "econometric: HAR-CJ, continuous and significant-jump parts (Andersen et al. 2007)",
    "hexp": "econometric: HExp, EWMAs of RV at 1/5/25/125 sessions (Bollerslev et al. 2018)",
    "hexp_gl": "econometric: HExpGl, HExp plus a lagged cross-sectional market-RV factor (panel input)",
    "garch": "econometric: GARCH(1,1) (arch)",
    "gjr_garch": "econometric: GJR-GARCH(1,1,1) (arch)",
    "quantile": "neural: return-quantile network (pinball loss)",
    "quantile_event": "neural: return-quantile network conditioned on economic events",
    "voltransformer": "neural: Transformer on returns",
    "prob_lstm": "neural: probabilistic LSTM (Gaussian or Student-t likelihood)",
    "lstm_point": "neural: LSTM point forecast of log RV",
    "ensemble": "stack: LightGBM over the other models' out-of-fold forecasts",
    "chronos2": "foundation: Chronos-2, zero-shot on log RV (local weights; research name chronos-2)",
    "kronos": "foundation: Kronos on daily OHLCV K-lines (local weights; research name kronos-base)",
    "kronos_event": "foundation: Kronos conditioned on the event calendar (research name kronos-event)",
}

#: The research plan's predictor names (``003``: kronos-base, kronos-event, chronos-2) -> registry names.
RESEARCH_NAMES: dict[str, str] = {
    "kronos-base": "kronos",
    "kronos-event": "kronos_event",
    "chronos-2": "chronos2",
}


def model_kind(name: str) -> str:
    """The kind of a built-in model (``baseline``, ``econometric``, ``neural``, ``stack``, ``foundation``)."""
    return BUILTIN_MODELS[name].split(":", 1)[0]


#: Registry name -> the module whose ``@register`` defines it.
MODEL_MODULES: dict[str, str] = {
    "naive": "tasks.models.baselines",
    "ewma": "tasks.models.baselines",
    "har": "tasks.models.har",
    "har_j": "tasks.models.har",
    "lhar": "tasks.models.har_leverage",
    "har_wls": "tasks.models.har_family",
    "harq": "tasks.models.har_family",
    "harq_f": "tasks.models.har_family",
    "shar": "tasks.models.har_family",
    "har_cj": "tasks.models.har_family",
    "hexp": "tasks.models.hexp",
    "hexp_gl": "tasks.models.hexp",
    "garch": "tasks.models.garch",
    "gjr_garch": "tasks.models.garch",
    "quantile": "tasks.models.quantile",
    "quantile_event": "tasks.models.quantile",
    "voltransformer": "tasks.models.transformer",
    "prob_lstm": "tasks.models.prob_lstm",
    "lstm_point": "tasks.models.lstm_point",
    "ensemble": "tasks.models.ensemble",
    "chronos2": "tasks.models.chronos2",
    "kronos": "tasks.models.kronos",
    "kronos_event": "tasks.models.kronos_event",
}
