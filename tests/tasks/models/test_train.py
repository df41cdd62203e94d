"""tasks/train.py: devices, chronological splits, scaler, device-resident batches, the training loop,
history plot and checkpoints (including refusing a pickle that carries code)."""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import ConfigError, DataError
from tasks.models.checkpoint import check_plain, code_version, load_checkpoint, save_checkpoint
from tasks.models.torch_data import Scaler, TensorXY, WindowXY, chronological_split, make_windows
from tasks.models.torch_fit import EpochStats, TrainConfig, fit_torch, plot_history
from tasks.models.torch_runtime import pick_device, seeded, set_seed, torch_threads
from tasks.train import volatility_metrics

# --- devices -----------------------------------------------------------------------------------


def test_pick_device_auto_and_cpu() -> None:
    auto = pick_device("auto")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert auto.type == expected
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_pick_device_refuses_missing_cuda() -> None:
    with pytest.raises(ConfigError, match="device='cuda'.*not available"):
        pick_device("cuda")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:0", "", 3])
def test_pick_device_refuses_unknown_names(bad: object) -> None:
    with pytest.raises(ConfigError, match="device must be one of"):
        pick_device(bad)  # type: ignore[arg-type]


# --- splits and scaler ---------------------------------------------------------------------------


def test_chronological_split_puts_validation_strictly_after_training() -> None:
    rng = np.random.default_rng(0)
    dates = np.sort(rng.integers(0, 200, size=600))  # several symbols share dates
    rng.shuffle(dates)  # samples arrive in any order
    tr, va = chronological_split(dates, 0.25)
    assert tr.size + va.size == dates.size and np.intersect1d(tr, va).size == 0
    assert dates[va].min() > dates[tr].max()
    assert np.unique(dates[va]).size == math.floor(np.unique(dates).size * 0.25)


def test_chronological_split_gap_and_edges() -> None:
    dates = np.arange(100)
    tr, va = chronological_split(dates, 0.2, gap=4)
    assert dates[tr].max() == 75 and dates[va].min() == 80  # 76..79 dropped: no shared h-step targets
    tr0, va0 = chronological_split(dates, 0.0)
    assert tr0.size == 100 and va0.size == 0
    with pytest.raises(ConfigError, match="val_fraction"):
        chronological_split(dates, 1.0)
    with pytest.raises(ConfigError, match="gap"):
        chronological_split(dates, 0.2, gap=-1)
    with pytest.raises(DataError, match="no training dates"):
        chronological_split(np.arange(3), 0.5, gap=5)


def test_scaler_fits_training_rows_only_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(500, 3))
    x[5, 1] = np.nan
    train_rows = np.arange(400)
    s1 = Scaler.fit(x[train_rows])
    x2 = x.copy()
    x2[400:] = 1e9  # validation rows changed wildly
    s2 = Scaler.fit(x2[train_rows])
    assert s1 == s2
    assert np.allclose(s1.mean, np.nanmean(x[:400], axis=0))
    assert np.allclose(s1.std, np.nanstd(x[:400], axis=0))
    z = s1.transform(x[:400])
    assert np.allclose(np.nanmean(z, axis=0), 0.0, atol=1e-12)
    assert Scaler.from_state(s1.state()) == s1
    assert np.allclose(s1.inverse(z), x[:400], equal_nan=True)
    constant = Scaler.fit(np.ones((10, 1)))
    assert constant.std == (1.0,)


# --- device-resident batches -------------------------------------------------------------------------


def test_window_batches_match_explicit_windows() -> None:
    series = np.arange(40, dtype=np.float32).reshape(20, 2)
    ends = np.array([4, 9, 19])
    xy = make_windows(series, ends, np.array([1.0, 2.0, 3.0]), 5, torch.device("cpu"))
    x, y = xy.batch(torch.tensor([2, 0]))
    assert x.shape == (2, 5, 2)
    assert torch.equal(x[0], torch.from_numpy(series[15:20]))
    assert torch.equal(x[1], torch.from_numpy(series[0:5]))
    assert y.tolist() == [3.0, 1.0]
    with pytest.raises(DataError, match="window end"):
        WindowXY(torch.zeros(5, 1), torch.tensor([2]), torch.zeros(1), 5)


# --- training loop ---------------------------------------------------------------------------------


def _regression(seed: int, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    return x, y


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1), nn.Flatten(0))


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.mean((out - y) ** 2)


def test_fit_torch_learns_and_reports_progress() -> None:
    seen: list[EpochStats] = []
    with seeded(0):
        net = _mlp()
        hist = fit_torch(
            net, _mse, _regression(0), _regression(1, 64), {"epochs": 30, "lr": 1e-2}, seen.append
        )
    assert len(seen) == len(hist.train_loss) == len(hist.val_loss)
    assert hist.val_loss[-1] < 0.2 * hist.val_loss[0]
    assert [s.epoch for s in seen] == list(range(len(seen)))
    assert hist.samples_per_s > 0 and hist.device == "cpu"


def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    x, y = _regression(0)
    xv, yv = _regression(1, 64)
    with seeded(0):
        net = _mlp()
        # validation targets have the opposite sign: fitting the training data makes them worse
        hist = fit_torch(net, _mse, (x, y), (xv, -yv), TrainConfig(epochs=50, lr=1e-2, patience=3))
    assert hist.stopped_early
    assert len(hist.train_loss) == hist.best_epoch + 1 + 3 < 50
    with torch.no_grad():
        final = float(_mse(net(xv), -yv))
    assert final == pytest.approx(hist.best_loss, rel=1e-5)  # best weights restored, not the last ones
    assert min(hist.val_loss) == hist.best_loss


def test_same_seed_gives_identical_weights_and_other_seed_differs() -> None:
    def run(seed: int) -> list[torch.Tensor]:
        with seeded(seed):
            net = _mlp()
            fit_torch(net, _mse, _regression(0), _regression(1, 64), TrainConfig(epochs=3, seed=seed))
        return [p.detach().clone() for p in net.parameters()]

    a, b, c = run(5), run(5), run(6)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))


def test_seeded_restores_the_callers_rng_and_set_seed_validates() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        torch.rand(10)
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(ConfigError, match="seed"):
        set_seed(-1)


def test_fit_torch_rejects_an_empty_split_and_a_diverging_loss() -> None:
    net = _mlp()
    with pytest.raises(DataError, match="empty"):
        fit_torch(net, _mse, (torch.zeros(0, 4), torch.zeros(0)), None, {})
    x, y = _regression(0)
    with pytest.raises(ConfigError, match="diverged.*lr"):
        fit_torch(net, lambda o, t: torch.mean(o) * float("nan"), (x, y), None, {"epochs": 2})


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("batch_size", -1), ("lr", 0.0), ("patience", -1), ("grad_clip", 0), ("num_threads", 0)],
)
def test_train_config_names_the_bad_parameter(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_torch_threads_restores_the_count() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_plot_history_writes_a_png(tmp_path: Path) -> None:
    with seeded(0):
        hist = fit_torch(_mlp(), _mse, _regression(0), _regression(1, 64), {"epochs": 3})
    out = plot_history(hist, tmp_path / "plots" / "history.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- checkpoints -----------------------------------------------------------------------------------


def _meta() -> dict[str, object]:
    return {
        "config": {"d_model": 16, "loss": "mse", "grad_clip": None},
        "features": ["log_rv", "ret"],
        "scaler": Scaler.fit(np.arange(10.0)[:, None]).state(),
        "data_version": "abc123",
        "extra": torch.arange(3),
    }


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    net = _mlp()
    path = save_checkpoint(tmp_path / "run" / "model.pt", net.state_dict(), _meta())
    weights, meta = load_checkpoint(path, expected_features=["log_rv", "ret"])
    other = _mlp()
    other.load_state_dict(weights)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), other.parameters(), strict=True))
    assert meta["config"] == {"d_model": 16, "loss": "mse", "grad_clip": None}
    assert meta["data_version"] == "abc123" and meta["code_version"] == code_version()
    assert Scaler.from_state(meta["scaler"]).mean == (4.5,)
    assert torch.equal(meta["extra"], torch.arange(3))
    assert not list(tmp_path.glob("run/.*tmp"))  # atomic write left no temporary file


def test_checkpoint_feature_mismatch_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", _mlp().state_dict(), _meta())
    with pytest.raises(
        ConfigError, match=r"trained on features \['log_rv', 'ret'\].*missing from the checkpoint"
    ):
        load_checkpoint(path, expected_features=["log_rv", "ret", "jump_share"])
    with pytest.raises(ConfigError, match="another order"):
        load_checkpoint(path, expected_features=["ret", "log_rv"])


def test_checkpoint_meta_must_be_plain(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"meta.config.when holds a date"):
        save_checkpoint(tmp_path / "m.pt", {}, {"config": {"when": __import__("datetime").date(2020, 1, 1)}})
    check_plain({"a": [1, 2.0, None, "x", {"b": torch.zeros(1)}]})


class _Payload:
    """Unpickling this runs ``os.makedirs(marker)``: code execution, if the loader allowed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.makedirs, (str(self.marker),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_carrying_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # 1) a torch-format checkpoint whose meta hides the payload
    torch_file = tmp_path / "evil.pt"
    torch.save(
        {"format": "volrisk-checkpoint", "version": 1, "weights": {}, "meta": {"x": _Payload(marker)}},
        torch_file,
    )
    # 2) a bare pickle of the payload
    raw_file = tmp_path / "evil.pkl"
    raw_file.write_bytes(pickle.dumps(_Payload(marker)))
    # the payload is real: a plain pickle load would run it
    pickle.loads(raw_file.read_bytes())
    assert marker.exists()
    marker.rmdir()
    for path in (torch_file, raw_file):
        with pytest.raises(DataError, match="refused: not a safe volrisk checkpoint"):
            load_checkpoint(path)
        assert not marker.exists(), f"the payload ran while loading {path.name}"
    assert zipfile.is_zipfile(torch_file)


def test_load_checkpoint_refuses_foreign_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(DataError, match="not a volrisk checkpoint"):
        load_checkpoint(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match="refused"):
        load_checkpoint(garbage)
    buf = io.BytesIO()
    torch.save({"format": "volrisk-checkpoint", "version": 99, "weights": {}, "meta": {}}, buf)
    future = tmp_path / "future.pt"
    future.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="version 99"):
        load_checkpoint(future)


# --- metrics ---------------------------------------------------------------------------------------


def test_volatility_metrics_known_values() -> None:
    actual = np.array([1.0, 2.0, 4.0, np.nan])
    forecast = np.array([1.0, 1.0, 2.0, 1.0])
    m = volatility_metrics(actual, forecast, naive=np.array([2.0, 2.0, 2.0, 2.0]))
    expected_qlike = np.mean([0.0, 2 - math.log(2) - 1, 2 - math.log(2) - 1])
    assert m["n"] == 3
    assert m["qlike"] == pytest.approx(expected_qlike)
    assert m["mse"] == pytest.approx((0 + 1 + 4) / 3)
    assert m["r2_vs_naive"] == pytest.approx(1 - 5 / 5)
    assert volatility_metrics(np.array([np.nan]), np.array([1.0]))["qlike"] is None


def test_tensor_xy_checks_lengths() -> None:
    with pytest.raises(DataError, match="share length"):
        TensorXY(torch.zeros(3, 2), torch.zeros(4))
