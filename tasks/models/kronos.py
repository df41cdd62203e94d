"""``kronos`` and ``kronos_event``: Kronos (Shi et al. 2025), zero-shot on daily OHLCV K-lines.

The model code is the published Kronos implementation (``KronosTokenizer``, ``Kronos``,
``KronosPredictor``, MIT licence, github.com/shiyu-coder/Kronos) as vendored, unchanged apart from a
device default, by the ``kronos-finance`` package (MIT; ``kronos_finance._vendor.kronos_model``), which
imports nothing from the network. Weights come from local folders only (:mod:`.foundation_weights`;
default ``$VOLRISK_MODELS_DIR/Kronos-base`` and ``Kronos-Tokenizer-base``, copies of
``NeoQuasar/Kronos-base`` and ``NeoQuasar/Kronos-Tokenizer-base``), each ``config.json`` +
``model.safetensors``; the classes are built from ``config.json`` and the weights loaded strictly, so a
checkpoint of another architecture is refused with a :class:`~core.errors.ConfigError`.

Forecast, per (symbol, origin ``t``)
------------------------------------
The context is the daily K-line (``open, high, low, close, volume`` of ``features_daily``; ``amount =
volume * mean(OHLC)`` as Kronos's own predictor fills it) of at most ``context`` sessions ending at
``t``, rows without a finite OHLC left out, stamped with the session dates; the next ``h`` session dates
are the target stamps. ``KronosPredictor.predict_batch`` (``sample_count=1``) is given the window
``samples`` times, so each batch row is one independent sampled path (the predictor's own
``sample_count`` would average the paths away). Sampling uses temperature ``temperature`` and nucleus
``top_p`` (default 1.0: the full predictive distribution, no truncation) under a seed derived from
(``seed``, symbol, origin), so a forecast does not depend on the other origins of the call.

Mapping to the prediction schema
--------------------------------
Each path gives the return of the target session, ``r_s = log(C_s(t+h) / C_s(t+h-1))`` (``C(t)`` the
observed close; a sampled close is floored at 1% of the previous one, which only an untrained model
reaches). ``mean`` is the mean of ``r_s``, ``variance`` their sample variance (ddof 1); with a few dozen
paths a 1% quantile is not identified, so the return quantiles are Gaussian with that mean and
variance (family ``gaussian``). ``rv = variance / c`` with the training variance scale ``c``. Unlike the
variance models, ``kronos`` forecasts direction (``q50 = mean``), which the strategy trades.

``kronos_event``: the research plan's event-conditioned Kronos
-------------------------------------------------------------
Kronos takes no covariates, so the event calendar (``ModelData.events``) conditions its forecast
afterwards, with two effects estimated per symbol on the training sessions only (targets
``<= train_end``), from :func:`tasks.events.event_features`:

- variance: on a target session with a scheduled event of type ``k`` the variance is multiplied by
  ``m_k = exp(s * log(RV_event / RV_quiet))``, the ratio of mean realized variance on training targets
  with that event to targets with no event of any type (inside the span the calendar of ``k`` covers),
  shrunk by ``s = n / (n + 10)`` over its ``n``
  event days and clipped to ``[0.5, 4]`` (1 with fewer than 5 event days); several types: the largest;
- mean: a surprise ``z`` of type ``k`` released within ``surprise_days`` before the origin's close shifts
  the mean by ``b_k * clip(z, +-3) * sd``, ``b_k`` the ridge slope (penalty 10, clipped to +-0.5) of
  the training targets' returns in units of the origin's ``sqrt(rv_w)`` on those ``z``.

Paths are drawn with the same seeds as ``kronos``, so on a target without a scheduled event and with no
fresh surprise ``kronos_event`` forecasts exactly what ``kronos`` does (the non-event ship-stop gate).
"""

from __future__ import annotations

import json
import threading
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from scipy.stats import norm

from core.errors import ConfigError, DataError
from core.schema import QUANTILES
from tasks.models.base import ModelData, register
from tasks.models.foundation_base import (
    Forecast,
    FoundationForecaster,
    SymbolState,
    cached_load,
    check_positive_int,
)
from tasks.models.foundation_weights import weights_path
from tasks.models.frames import BASE_COLUMNS, RV_FLOOR, symbol_calendar, target_sessions

OHLC: tuple[str, ...] = ("open", "high", "low", "close")
_SAMPLING_LOCK = threading.RLock()
#: Event effects: fewest event days, shrinkage prior (days), clip of the variance ratio and slope.
MIN_EVENT_DAYS, SHRINK_DAYS, RATIO_CLIP, SLOPE_CLIP, RIDGE, Z_CLIP = 5, 10.0, (0.5, 4.0), 0.5, 10.0, 3.0


def _build(cls: Any, path: Path, what: str) -> Any:
    """``cls(**config.json)`` with the folder's safetensors loaded strictly; ``ConfigError`` otherwise."""
    from safetensors.torch import load_file

    try:
        cfg = json.loads((path / "config.json").read_text())
        module = cls(**cfg)
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"kronos: {path}/config.json does not describe a {what} ({first}); copy the published snapshot"
        ) from None
    try:
        state: dict[str, Any] = {}
        for file in sorted(path.glob("*.safetensors")):
            state.update(load_file(str(file)))
        module.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"kronos: the weights in {path} do not fit a {what} of its config.json ({first})"
        ) from None
    return module.eval()


def load_kronos(model_path: Path, tokenizer_path: Path, device: Any, max_context: int) -> Any:
    """A ``KronosPredictor`` over the two local folders (model and tokenizer), checked to match."""
    from tasks.models.chronos2 import offline_hub

    offline_hub()
    from kronos_finance._vendor.kronos_model import Kronos as KronosNet
    from kronos_finance._vendor.kronos_model import KronosPredictor, KronosTokenizer

    tokenizer = _build(KronosTokenizer, tokenizer_path, "KronosTokenizer")
    model = _build(KronosNet, model_path, "Kronos model")
    if (tokenizer.s1_bits, tokenizer.s2_bits) != (model.s1_bits, model.s2_bits):
        raise ConfigError(
            f"kronos: tokenizer {tokenizer_path} codes {tokenizer.s1_bits}+{tokenizer.s2_bits} bits but "
            f"model {model_path} expects {model.s1_bits}+{model.s2_bits}; "
            "use the tokenizer published with the model"
        )
    return KronosPredictor(model, tokenizer, device=str(device), max_context=max_context)


def origin_seed(seed: int, symbol: str, origin: object) -> int:
    """The sampling seed of one (symbol, origin): independent of the other origins of a call."""
    return zlib.crc32(f"{seed}|{symbol}|{origin}".encode())


@register("kronos")
class KronosModel(FoundationForecaster):
    """Kronos on daily K-lines (see the module docstring).

    Parameters
    ----------
    tokenizer : str | None
        Tokenizer folder (absolute, or under ``$VOLRISK_MODELS_DIR``); None: ``Kronos-Tokenizer-base``.
    samples : int
        Sampled paths per forecast.
    temperature, top_p : float
        Sampling temperature and nucleus mass (1.0: no truncation).
    seed : int
        Base of the per-origin sampling seeds.
    max_context : int
        The model's context limit (512 for Kronos-base).
    weights, context, device, batch_size, calendar, threads, weights_fingerprint
        See :class:`~.foundation_base.FoundationForecaster` (``batch_size`` is not used: one forward
        pass holds the ``samples`` paths of one origin).
    """

    name = "kronos"
    columns: ClassVar[tuple[str, ...]] = (*BASE_COLUMNS, *OHLC, "volume", "session_end")
    required_inputs: ClassVar[tuple[str, ...]] = OHLC

    def __init__(
        self,
        weights: str | None = None,
        tokenizer: str | None = None,
        context: int = 256,
        samples: int = 32,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        max_context: int = 512,
        device: str = "auto",
        batch_size: int = 64,
        calendar: str | dict[str, str] | None = None,
        threads: int | None = None,
        weights_fingerprint: str | None = None,
    ) -> None:
        super().__init__(
            weights=weights,
            context=context,
            device=device,
            batch_size=batch_size,
            calendar=calendar,
            threads=threads,
            weights_fingerprint=weights_fingerprint,
        )
        weights_path(self.name, "tokenizer", tokenizer)
        self.tokenizer = tokenizer
        self.samples = check_positive_int(samples, "samples", 2)
        for key, value in (("temperature", temperature), ("top_p", top_p)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= (10 if key == "temperature" else 1)
            ):
                raise ConfigError(
                    f"{key} must be a number in (0, {10 if key == 'temperature' else 1}]; got {value!r}"
                )
        self.temperature, self.top_p = float(temperature), float(top_p)
        from tasks.models.torch_runtime import check_seed

        self.seed = check_seed(seed)
        self.max_context = check_positive_int(max_context, "max_context", 2)

    def _settings(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer,
            "samples": self.samples,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "max_context": self.max_context,
        }

    def _load(self) -> Any:
        from tasks.models.torch_runtime import pick_device

        model_path, tok_path = self.folder("weights"), self.folder("tokenizer")
        device = pick_device(self.device)
        key = ("kronos", str(model_path.resolve()), str(tok_path.resolve()), str(device), self.max_context)
        return cached_load(key, lambda: load_kronos(model_path, tok_path, device, self.max_context))

    def _paths(self, predictor: Any, window: pl.DataFrame, stamps: list[Any], seed: int) -> np.ndarray:
        """Sampled closes, shape ``(samples, h)``, for one context window and its ``h`` target stamps."""
        import pandas as pd

        from tasks.models.torch_runtime import seeded

        df = window.select(*OHLC, pl.col("volume").fill_null(0.0).fill_nan(0.0)).cast(pl.Float64).to_pandas()
        x_ts = pd.Series(pd.to_datetime(window["session_date"].to_list()))
        y_ts = pd.Series(pd.to_datetime(stamps))
        n = self.samples
        with _SAMPLING_LOCK, seeded(seed):  # torch's generator is process-wide: one sampler at a time
            out = predictor.predict_batch(
                [df] * n, [x_ts] * n, [y_ts] * n, pred_len=len(stamps), T=self.temperature,
                top_k=0, top_p=self.top_p, sample_count=1, verbose=False,
            )  # fmt: skip
        return np.stack([o["close"].to_numpy(dtype=float) for o in out])

    def _sample_returns(
        self, predictor: Any, frame: pl.DataFrame, positions: np.ndarray, horizon: int, data: ModelData
    ) -> np.ndarray:
        """Sampled log returns of each origin's target session, shape ``(origins, samples)``."""
        symbol = str(frame["symbol"][0])
        calendar = symbol_calendar(self.calendar, symbol) or data.calendar_of(symbol)
        ok = frame.select(pl.all_horizontal(pl.col(c).cast(pl.Float64).is_finite() for c in OHLC)).to_series()
        dates = frame["session_date"]
        out = np.empty((positions.size, self.samples))
        for i, p in enumerate(positions.tolist()):
            lo = max(0, p + 1 - self.context)
            window = frame[lo : p + 1].filter(ok[lo : p + 1])
            if not ok[p] or window.height < 2:
                raise DataError(
                    f"kronos: {symbol} {dates[p]} has no daily OHLC (or under 2 sessions of it in the "
                    "context); "
                    "Kronos reads K-lines built from bars, which realized-measure imports lack"
                )
            stamps = [target_sessions(dates, np.asarray([p]), k, calendar)[0] for k in range(1, horizon + 1)]
            closes = self._paths(predictor, window, stamps, origin_seed(self.seed, symbol, dates[p]))
            last = float(frame["close"][p])
            prev = closes[:, -2] if horizon > 1 else np.full(self.samples, last)
            prev = np.where(np.isfinite(prev) & (prev > 0), prev, last)
            cur = np.where(np.isfinite(closes[:, -1]), closes[:, -1], prev)
            out[i] = np.log(np.maximum(cur, 0.01 * prev) / prev)
        return out

    def _forecast(
        self,
        backend: Any,
        state: SymbolState,
        frame: pl.DataFrame,
        positions: np.ndarray,
        horizon: int,
        data: ModelData,
    ) -> Forecast:
        r = self._sample_returns(backend, frame, positions, horizon, data)
        mean = r.mean(axis=1)
        var = np.maximum(r.var(axis=1, ddof=1), RV_FLOOR)
        mean, var = self._condition(state, frame, positions, horizon, data, mean, var)
        quantiles = mean[:, None] + np.sqrt(var)[:, None] * norm.ppf(np.asarray(QUANTILES))[None, :]
        return Forecast(
            variance=var,
            rv=var / state.var_scale,
            mean=mean,
            quantiles=quantiles,
            family="gaussian",
            params={"samples": self.samples, "var_scale": state.var_scale, **state.extra},
        )

    def _condition(
        self,
        state: SymbolState,
        frame: pl.DataFrame,
        positions: np.ndarray,
        horizon: int,
        data: ModelData,
        mean: np.ndarray,
        var: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The event conditioning (``kronos_event``); ``kronos`` returns its forecast unchanged."""
        return mean, var
