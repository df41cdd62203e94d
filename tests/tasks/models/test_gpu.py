"""The torch models on CUDA: they train there, forecast what they forecast on the CPU, and repeat.

Skipped where torch sees no CUDA device (CI, this project's laptops); run on a GPU machine with
``pytest -m gpu tests/tasks/models/test_gpu.py``. Each neural model is fitted twice on CUDA and once
on the CPU with the same seed and its small test configuration on real BTC/USDT daily features.
CUDA kernels and bf16 autocast differ from the CPU's float32 in the last bits, which training
amplifies, so the CPU comparison is on the forecast level (median relative gap of the RV forecast),
not bit-for-bit; two CUDA fits with one seed must agree to float32 rounding.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import torch
from model_helpers import TRAIN_END, fast_config

from tasks.models.base import ModelData, get_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
NEURAL = ("voltransformer", "prob_lstm", "lstm_point", "quantile")


def _forecast(name: str, data: ModelData, device: str) -> tuple[pl.DataFrame, str]:
    model = get_model(name, **fast_config(name), device=device, seed=7)
    model.fit(data.upto(TRAIN_END), TRAIN_END)
    days = data.features.filter(pl.col("session_date") > TRAIN_END)["session_date"].unique().sort()
    origins = [d for d in days.to_list() if d <= TRAIN_END + timedelta(days=60)]
    return model.predict(data, origins), str(getattr(model, "device", "?"))


@pytest.mark.parametrize("name", NEURAL)
def test_a_model_trains_on_cuda_repeats_and_agrees_with_the_cpu(name: str, btc_data: ModelData) -> None:
    first, device = _forecast(name, btc_data, "cuda")
    again, _ = _forecast(name, btc_data, "cuda")
    on_cpu, cpu_device = _forecast(name, btc_data, "cpu")
    assert device.startswith("cuda") and cpu_device == "cpu"
    rv_gpu, rv_again, rv_cpu = (f["rv"].to_numpy() for f in (first, again, on_cpu))
    assert first.height == on_cpu.height > 0
    assert np.isfinite(rv_gpu).all() and (rv_gpu > 0).all()
    np.testing.assert_allclose(rv_gpu, rv_again, rtol=1e-4)  # one seed, one device: the same fit
    gap = np.median(np.abs(rv_gpu / rv_cpu - 1.0))
    assert gap < 0.25, f"{name}: CUDA and CPU forecasts differ by a median {gap:.1%}"
    quantiles = first.select("q01", "q50", "q99").to_numpy()
    assert (np.diff(quantiles, axis=1) > 0).all()  # ordered return quantiles on the GPU too


def test_bf16_autocast_runs_the_training_steps_on_cuda() -> None:
    from tasks.models.torch_data import TensorXY
    from tasks.models.torch_fit import TrainConfig, fit_torch

    seen: list[torch.dtype] = []

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.lin(x).squeeze(-1)
            if self.training:
                seen.append(out.dtype)
            return out

    x = torch.randn(256, 4, device="cuda")
    y = x.sum(dim=1)
    net = Probe().to("cuda")
    config = TrainConfig(epochs=2, batch_size=64, device="cuda", amp=True)
    hist = fit_torch(net, lambda f, t: torch.mean((f - t) ** 2), TensorXY(x, y), TensorXY(x, y), config)
    assert seen and set(seen) == {torch.bfloat16}
    assert hist.device.startswith("cuda") and hist.samples_per_s > 0
    assert next(net.parameters()).dtype == torch.float32  # master weights stay float32
