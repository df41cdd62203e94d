"""Benchmark: training throughput (samples/s) of the torch models, against the research's DataLoader path.

Measured in one process, on the CPU and, when present, on CUDA:

``voltransformer`` at research size
    d_model 64, 8 heads, 4 layers, feed-forward 256, dropout 0.1, window 60, batch 128, MSE on
    one-minute returns (the real FTX BTC-PERP file when ``../shared/data`` is present, else seeded
    Student-t returns).

    - ``reference``: the research notebook's path -- a ``torch.utils.data.Dataset`` whose windows are
      built in a Python loop and served by per-sample ``__getitem__``, a shuffling ``DataLoader``,
      ``.to(device)`` and ``loss.item()`` every batch, the full ``nn.TransformerEncoder`` (every
      token of every layer, ``nn.TransformerEncoderLayer`` as is), float32.
    - ``volrisk (bf16)``: what ``MinuteTransformer`` trains with by default -- ``tasks.models.torch_fit.fit_torch``
      on a ``WindowXY`` resident on the device (a batch is one index gather), one host sync per epoch,
      the ``last_token_only`` last layer (same outputs, tested), the ``fast_train`` layer path
      (direct attention and 16-bit keep-masks for every dropout; same parameters and eval outputs,
      tested) and bf16 autocast of the training steps on CUDA, and on a CPU with native bf16
      (``cpu_amp``; float32 master weights and loss). On a CPU without it the label says float32.
    - ``volrisk, float32``: the same without autocast.
    - ``volrisk, float32, nn layers``: also without ``fast_train``: the data path and the last-layer
      saving alone.
    - ``volrisk, full encoder``: the default with ``last_token_only=False``.

    Each variant trains ``BENCH_BATCHES`` batches per repeat after one warm-up batch; variants are
    interleaved within each repeat (so machine load hits them alike) and the median of
    ``BENCH_REPEATS`` repeats is printed with its ratio to the reference's median. Weights are
    initialized from the same seed in every variant. The target is 2x the reference on the CPU
    with the default configuration.

``prob_lstm`` and ``quantile``
    Their default configuration fitted on real BTC/USDT daily features through 2022-12-31 with a fixed
    number of epochs; samples/s from ``History.samples_per_s`` (training samples per second of the
    fit loop, validation passes included).

Threads: ``BENCH_THREADS`` (default 1) intra-op threads for every variant. On this 2-core machine,
shared with other jobs, a second torch thread made small steps several times slower, so 1 is both the
fastest and the least noisy setting; the ratio compares like with like either way.

Run: ``.venv/bin/python bench/train.py`` (or ``make bench``). About 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import math
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

bench_dir = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, bench_dir)
from _util import median, peak_rss_mb, timed  # noqa: E402

from core.errors import ConfigError  # noqa: E402
from tasks.models.base import ModelData, get_model, model_names  # noqa: E402
from tasks.models.daily_nn import config_dict  # noqa: E402
from tasks.models.transformer import (  # noqa: E402
    MinuteConfig,
    VolTransformerNet,
    minute_loss,
    positive_head,
)
from tasks.models.torch_fit import TrainConfig, cpu_bf16_native, fit_torch
from tasks.models.torch_data import make_windows
from tasks.models.torch_runtime import seeded, torch_threads

REPO = Path(bench_dir).parent
FTX = REPO.parent / "shared" / "data" / "btc_perp_1m_ftx_202201" / "btc-perp-20211231-20220201_1m.csv"
BTC_1H = REPO / "data" / "samples" / "BTC_USDT-1h_binance_2017_2024.csv"
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "6"))
SIZE = {"d_model": 64, "heads": 8, "layers": 4, "ff": 256, "window": 60, "batch": 128}
SIZE_CONFIG = {**{k: v for k, v in SIZE.items() if k != "batch"}, "batch_size": SIZE["batch"], "dropout": 0.1}
TARGET_RATIO = 2.0
TRAIN_END = date(2022, 12, 31)


def load_returns() -> tuple[np.ndarray, str]:
    """One-minute log returns: the FTX file when present, else seeded Student-t returns."""
    if FTX.exists():
        from tasks.models.transformer import minute_returns
        from tasks.sources.files import read_bars_file

        _, r = minute_returns(read_bars_file(FTX, symbol="BTC-PERP").bars)
        return r, "FTX BTC-PERP 1m, Jan 2022"
    rng = np.random.default_rng(42)
    return 1e-3 * rng.standard_t(4, size=45_000), "seeded Student-t(4) returns (shared data absent)"


def minute_config(**changes: Any) -> MinuteConfig:
    """The minute model's default configuration (research size, what users get), with ``changes``."""
    return MinuteConfig(**{**config_dict(MinuteConfig()), **SIZE_CONFIG, **changes})


def make_net(cfg: MinuteConfig) -> VolTransformerNet:
    return VolTransformerNet(
        1,
        cfg.window,
        cfg.d_model,
        cfg.heads,
        cfg.layers,
        cfg.ff,
        cfg.dropout,
        positive_head(cfg.d_model),
        cfg.last_token_only,
        cfg.fast_train,
    )


# ------------------------------------------------------------------------------------------ reference
class ReturnsDataset(Dataset):  # type: ignore[type-arg]
    """The research notebook's dataset: windows built in a Python loop, one sample per ``__getitem__``."""

    def __init__(self, series: np.ndarray, m: int) -> None:
        xs, ys = [], []
        for i in range(m, len(series)):
            xs.append(series[i - m : i].astype(np.float32))
            ys.append(np.float32(series[i] ** 2))
        self.X = torch.from_numpy(np.array(xs, dtype=np.float32))
        self.y = torch.from_numpy(np.array(ys, dtype=np.float32)).unsqueeze(-1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[idx], self.y[idx]


def run_reference(ds: ReturnsDataset, device: torch.device, batches: int) -> float:
    """Samples/s of the research loop over ``batches`` batches (after one warm-up batch)."""
    with seeded(0):
        net = make_net(minute_config(last_token_only=False, fast_train=False)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.MSELoss()
    loader = DataLoader(
        ds, SIZE["batch"], shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    net.train()
    total, done, t0 = 0.0, -1, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        loss = loss_fn(net(x.unsqueeze(-1)), y.squeeze(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        total += loss.item() * y.size(0)
        done += 1
        if done == 0:
            t0 = time.perf_counter()  # the first batch was the warm-up
        if done == batches:
            break
    return batches * SIZE["batch"] / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------ volrisk
def run_volrisk(z: np.ndarray, y: np.ndarray, device: torch.device, batches: int, mc: MinuteConfig) -> float:
    """Samples/s of ``fit_torch`` on device-resident windows (one warm-up batch first).

    ``mc`` gives the network and the loop settings (one epoch, no validation split), as
    :meth:`MinuteTransformer.fit` passes them.
    """
    m, b = mc.window, mc.batch_size
    rng = np.random.default_rng(0)
    pos = rng.choice(np.arange(m, z.size), size=(batches + 1) * b, replace=False)
    cfg = TrainConfig.from_mapping({**config_dict(mc), "epochs": 1, "device": device.type})
    loss = minute_loss(mc.loss)
    with seeded(0):
        net = make_net(mc).to(device)
    warm = make_windows(z, pos[:b] - 1, y[pos[:b]], m, device)
    fit_torch(net, loss, warm, None, cfg)
    data = make_windows(z, pos[b:] - 1, y[pos[b:]], m, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, _ = timed(lambda: fit_torch(net, loss, data, None, cfg))
    return batches * b / wall


def volrisk_variants(device: torch.device) -> dict[str, MinuteConfig]:
    """The configurations timed against the reference; the first is the default one."""
    bf16 = "bf16" if device.type == "cuda" or cpu_bf16_native() else "float32: no native bf16"
    return {
        f"volrisk ({bf16})": minute_config(),
        "volrisk, float32": minute_config(amp=False),
        "volrisk, float32, nn layers": minute_config(amp=False, fast_train=False),
        "volrisk, full encoder": minute_config(last_token_only=False),
    }


def transformer_bench(device: torch.device, r: np.ndarray) -> dict[str, Any]:
    sigma = float(np.std(r))
    z = np.clip(r / sigma, -50, 50)
    y = (r / sigma) ** 2
    build_s, ds = timed(lambda: ReturnsDataset(z, SIZE["window"]))
    configs = volrisk_variants(device)
    variants: dict[str, list[float]] = {"reference": [], **{k: [] for k in configs}}
    for _ in range(REPEATS):
        variants["reference"].append(run_reference(ds, device, BATCHES))
        for key, mc in configs.items():
            variants[key].append(run_volrisk(z, y, device, BATCHES, mc))
    return {"build_s": build_s, "windows": len(ds), **{k: median(v) for k, v in variants.items()}}


# ------------------------------------------------------------------------------------------ daily models
def daily_data() -> ModelData:
    import tasks.features as features
    from tasks.sources.files import read_bars_file

    bars = read_bars_file(BTC_1H, symbol="BTC-USDT").bars
    return ModelData(features.build_daily_features(bars, "24x7", "1h"), bars=bars)


def daily_bench(name: str, device: torch.device, data: ModelData) -> float | str:
    """Median samples/s of ``name``'s fit with its default config and 5 epochs."""
    if name not in model_names():
        return "skipped: not registered"
    extra: dict[str, Any] = {"epochs": 5, "patience": 100, "device": device.type}
    if name == "prob_lstm":
        extra["num_threads"] = THREADS
    rates = []
    for _ in range(REPEATS):
        try:
            model = get_model(name, **extra)
        except ConfigError as exc:
            return f"skipped: {exc}"
        with torch_threads(THREADS):
            model.fit(data, TRAIN_END)
        hist = getattr(model, "history", None)
        rate = getattr(hist, "samples_per_s", None)
        if not isinstance(rate, float) or not math.isfinite(rate):
            return "skipped: the model reports no History.samples_per_s"
        rates.append(rate)
    return median(rates)


def report(device: torch.device, r: np.ndarray, source: str, data: ModelData) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {THREADS} thread(s)"
    print(f"\n-- device: {name}")
    res = transformer_bench(device, r)
    ref = res["reference"]
    print(
        f"voltransformer d=64 h=8 L=4 window=60 batch=128, {BATCHES} batches x {REPEATS} repeats, {source}; "
        f"reference dataset of {res['windows']:,} windows built in {res['build_s']:.2f} s (not timed below)"
    )
    for key in [k for k in res if k not in ("build_s", "windows")]:
        ratio = res[key] / ref
        print(f"  {key:<30} {res[key]:>8,.0f} samples/s   x{ratio:.2f} vs reference")
    if device.type == "cpu":
        default = res[next(iter(volrisk_variants(device)))]
        verdict = "met" if default / ref >= TARGET_RATIO else "NOT met"
        print(f"  target >= {TARGET_RATIO:.0f}x on CPU (default config): {verdict} (x{default / ref:.2f})")
    for model in ("prob_lstm", "quantile"):
        rate = daily_bench(model, device, data)
        text = f"{rate:,.0f} samples/s" if isinstance(rate, float) else rate
        print(f"{model:<10} default config, BTC daily through {TRAIN_END}, 5 epochs: {text}")


def main() -> None:
    t0 = time.perf_counter()
    torch.set_num_threads(THREADS)
    r, source = load_returns()
    data = daily_data()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    else:
        print("(no CUDA device here: CPU figures only)")
    for device in devices:
        report(device, r, source, data)
    print(f"\npeak RSS {peak_rss_mb():,.0f} MiB; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
