"""Forecasting models. Importing this package registers every built-in model (see base.get_model)."""

# Baselines: naive, ewma, har, har_j, garch, gjr_garch.
from tasks.models import baselines, garch, har  # noqa: F401, I001  (one import line per team)

# Return-quantile models: quantile, quantile_event.
from tasks.models import quantile  # noqa: F401

# Neural volatility models: voltransformer, prob_lstm, lstm_point.
from tasks.models import lstm_point, prob_lstm, transformer  # noqa: F401

# The LightGBM stack of the others: ensemble (tasks/stacking.py).
from tasks import stacking  # noqa: F401, E402
