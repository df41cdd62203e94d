"""``prob_lstm``: the research probabilistic LSTM over the last m sessions, with Gaussian or Student-t NLL.

An LSTM reads a window of daily features (log rv_d, log rv_w, log rv_m, return, downside share, jump
share by default; optionally the cross-asset correlations of ``cross_asset_daily``, the research's
contagion inputs) and its last hidden state gives the parameters of next session's log-RV
distribution through an MLP head: location ``mu`` and scale ``softplus(.) + 1e-3``, and for the
Student-t likelihood one learned ``df = softplus(.) + 2`` (the research's proposed fix for its
overestimated risk). Unlike the research (``log(1 + RV)``, which is RV itself for daily variances of
order 1e-4), the target is ``log RV``, and by default (``residual=True``) the location is the log-HAR
forecast plus a learned correction and the scale is in units of HAR's residual standard deviation:
the head starts at location 0 and scale 1, so an untrained Gaussian model forecasts HAR's log-normal
mean ``exp(x'b + s2 / 2)`` and the likelihood still fits the distribution (see
:mod:`tasks.models.daily_nn`). ``residual=False`` is the research's model.

The conversion to ``PREDICTION_SCHEMA`` (E[RV], variance scale, family quantiles of returns) and the
training protocol are those of :mod:`tasks.models.daily_nn`: Gaussian ``rv = exp(mu + s^2/2)``;
Student-t ``rv = exp(mu) * smear`` (the median times the validation smearing factor, because a
Student-t log RV has no finite mean RV).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from core.errors import ConfigError
from tasks.models.base import register
from tasks.models.daily_nn import DailyConfig, DailyTorchForecaster, DistHead

_LIKELIHOODS = {"gaussian": "gaussian_nll", "student_t": "student_t_nll"}


class LSTMNet(nn.Module):
    """``nn.LSTM`` (batch first) -> last hidden state -> head."""

    def __init__(self, n_inputs: int, hidden: int, layers: int, dropout: float, head: nn.Module) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_inputs, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def check_lstm(hidden: object, layers: object, dropout: object) -> None:
    """Validate LSTM sizes (the message names the parameter)."""
    for name, value in (("hidden", hidden), ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1; got {value!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be a number in [0, 1); got {dropout!r}")


@dataclass(frozen=True)
class ProbLSTMConfig(DailyConfig):
    """:class:`~tasks.models.daily_nn.DailyConfig` plus the LSTM and its likelihood.

    Attributes
    ----------
    likelihood : str
        ``gaussian`` (the research's) or ``student_t`` (learned degrees of freedom).
    hidden, layers, dropout
        LSTM size (dropout between stacked layers).
    """

    likelihood: str = "gaussian"
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0
    loss: str = ""  # derived from likelihood


@register("prob_lstm")
class ProbLSTM(DailyTorchForecaster):
    """Probabilistic LSTM: parameters of next session's log-RV distribution (module docstring)."""

    name: str = "prob_lstm"
    config_class: ClassVar[type[DailyConfig]] = ProbLSTMConfig
    allowed_losses: ClassVar[tuple[str, ...]] = tuple(_LIKELIHOODS.values())

    def __init__(self, **config: Any) -> None:
        if "loss" in config:
            raise ConfigError("prob_lstm takes likelihood='gaussian' or 'student_t', not loss")
        likelihood = config.get("likelihood", "gaussian")
        if likelihood not in _LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {sorted(_LIKELIHOODS)}; got {likelihood!r}")
        super().__init__(**config, loss=_LIKELIHOODS[likelihood])
        c = self.cfg
        assert isinstance(c, ProbLSTMConfig)
        check_lstm(c.hidden, c.layers, c.dropout)

    def config(self) -> dict[str, Any]:
        """JSON-able configuration (``loss`` is implied by ``likelihood`` and left out)."""
        out = super().config()
        out.pop("loss", None)
        return out

    def build_net(self, n_inputs: int) -> nn.Module:
        c = self.cfg
        assert isinstance(c, ProbLSTMConfig)
        return LSTMNet(n_inputs, c.hidden, c.layers, c.dropout, DistHead(c.hidden, c.loss))
