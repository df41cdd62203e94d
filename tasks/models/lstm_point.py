"""``lstm_point``: the research LSTM point regressor of volatility on price-derived technical features.

Research log 002 regressed BTC/USDT volatility on technical indicators with an LSTM, MSE, early
stopping and a training-history plot, and ended at a test R² of -0.0055. This entry keeps that design
and scores it honestly:

- inputs: only price/volume-derived technical features of the last ``window`` sessions: the return,
  its absolute value, the log squared high-low range, log rolling return variances over 5 and 22
  sessions, an RSI(14) rescaled to [-1, 1] and the log volume ratio to its 22-session mean. No
  realized-variance input, as in the research. Data without bars (imported realized measures) have
  no range or volume: those inputs are dropped, not zero-filled;
- target: next session's log RV, by default as a correction to the log-HAR forecast
  (``residual=True``, see :mod:`tasks.models.daily_nn`: the head starts at zero, so an untrained
  network is HAR; the technical inputs then explain what HAR leaves), trained on QLIKE of RV
  (``loss="qlike"``, ``rv = exp(mu)``). The research's setting is ``residual=False, loss="mse"``
  (``rv = exp(mu) * smear``, Duan's smearing factor from the validation split);
- early stopping on the chronological validation tail (the starting HAR weights are a candidate);
  ``history`` holds the losses per epoch and ``plot_path`` (or :meth:`LSTMPoint.plot`) writes the
  training-history PNG;
- ``validation["r2_vs_naive"]``: out-of-sample R² of the RV forecast against the naive forecast (the
  last RV) on the validation split, ``1 - SSE(model) / SSE(naive)``. Negative means the model loses to
  the naive forecast, and it is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Self

from torch import nn

from core.errors import ConfigError
from tasks.models.base import ModelData, register
from tasks.models.daily_nn import DailyConfig, DailyTorchForecaster, DistHead
from tasks.models.prob_lstm import LSTMNet, check_lstm
from tasks.models.torch_fit import plot_history

TECHNICAL_FEATURES: tuple[str, ...] = (
    "ret",
    "abs_ret",
    "log_range",
    "vol_5",
    "vol_22",
    "rsi_14",
    "log_volume_ratio",
)


@dataclass(frozen=True)
class LSTMPointConfig(DailyConfig):
    """:class:`~tasks.models.daily_nn.DailyConfig` plus the LSTM size and the history plot path.

    ``loss`` is ``qlike`` (default) or ``mse`` (the research's).
    """

    loss: str = "qlike"
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0
    plot_path: str | None = None


@register("lstm_point")
class LSTMPoint(DailyTorchForecaster):
    """LSTM point regressor of next-session log RV on technical features (module docstring)."""

    name: str = "lstm_point"
    config_class: ClassVar[type[DailyConfig]] = LSTMPointConfig
    allowed_losses: ClassVar[tuple[str, ...]] = ("qlike", "mse")
    default_features: ClassVar[tuple[str, ...]] = (*TECHNICAL_FEATURES, "mkt_rv")

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        c = self.cfg
        assert isinstance(c, LSTMPointConfig)
        check_lstm(c.hidden, c.layers, c.dropout)
        if c.plot_path is not None and not isinstance(c.plot_path, str):
            raise ConfigError(f"plot_path must be None or a file path string; got {c.plot_path!r}")

    def build_net(self, n_inputs: int) -> nn.Module:
        c = self.cfg
        assert isinstance(c, LSTMPointConfig)
        return LSTMNet(n_inputs, c.hidden, c.layers, c.dropout, DistHead(c.hidden, c.loss))

    def fit(self, data: ModelData, train_end: date) -> Self:
        """Fit (see :meth:`DailyTorchForecaster.fit`) and write the history plot when ``plot_path`` is set."""
        super().fit(data, train_end)
        c = self.cfg
        assert isinstance(c, LSTMPointConfig)
        if c.plot_path is not None:
            self.plot(c.plot_path)
        return self

    def plot(self, path: str | Path) -> Path:
        """Write the training-history PNG (train and validation loss per epoch, best epoch marked)."""
        if self.history is None:
            raise ConfigError("lstm_point is not fitted: no training history to plot")
        target = "HAR residual of log RV" if self.cfg.residual else "log RV"
        return plot_history(self.history, path, title=f"lstm_point: {self.cfg.loss} on {target}")
