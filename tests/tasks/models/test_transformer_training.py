"""The Transformer's fast training path and CPU bf16 autocast: same network, same eval outputs.

``fast_train`` swaps the training-mode computation (direct attention, keep-masks from 16-bit random
integers) and ``cpu_amp`` runs training steps in bf16 where the CPU has it; neither may change the
parameters, the eval-mode forward, the dropout rate or seeded determinism.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tasks.models.torch_fit as train_mod
import tasks.models.transformer as transformer
from core.errors import ConfigError
from tasks.models.base import get_model
from tasks.models.torch_data import TensorXY
from tasks.models.torch_fit import TrainConfig, fit_torch
from tasks.models.torch_runtime import seeded
from tasks.models.transformer import (
    MinuteTransformer,
    VolTransformerNet,
    fast_dropout,
    keep_mask,
    positive_head,
)


def _net(fast_train: bool, dropout: float = 0.1, last_token_only: bool = True) -> VolTransformerNet:
    with seeded(0):
        return VolTransformerNet(3, 12, 16, 4, 3, 32, dropout, positive_head(16), last_token_only, fast_train)


def _x(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 12, 3, generator=torch.Generator().manual_seed(1))


def test_same_parameters_and_identical_eval_outputs() -> None:
    fast, plain = _net(True), _net(False)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    for key, value in fast.state_dict().items():
        assert torch.equal(value, plain.state_dict()[key])
    fast.eval()
    plain.eval()
    for last_token_only in (True, False):
        fast.last_token_only = plain.last_token_only = last_token_only
        with torch.no_grad():
            assert torch.equal(fast(_x()), plain(_x()))  # eval mode runs the nn modules as before
        assert torch.equal(fast(_x()), plain(_x()))  # with autograd on too


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("last_token_only", [True, False])
def test_training_path_equals_nn_layers_without_dropout(norm_first: bool, last_token_only: bool) -> None:
    fast, plain = _net(True, 0.0, last_token_only), _net(False, 0.0, last_token_only)
    for net in (fast, plain):
        for layer in net.encoder.layers:
            layer.norm_first = norm_first  # type: ignore[union-attr]
        net.train()
    out_fast, out_plain = fast(_x()), plain(_x())
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-5, atol=1e-6)
    out_fast.sum().backward()
    out_plain.sum().backward()
    for (name, a), (_, b) in zip(fast.named_parameters(), plain.named_parameters(), strict=True):
        assert a.grad is not None and b.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_direct_attention_with_dropout_is_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU branch that drops attention probabilities computes attention: with a keep-all mask it
    equals the nn layers without dropout."""
    monkeypatch.setattr(transformer, "keep_mask", lambda x, p: (torch.ones_like(x, dtype=torch.bool), 1.0))
    fast, plain = _net(True, 0.0, False), _net(False, 0.0, False)
    for layer in fast.encoder.layers:
        layer.self_attn.dropout = 0.1  # type: ignore[union-attr]
    fast.train()
    plain.train()
    torch.testing.assert_close(fast(_x()), plain(_x()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p", [0.03, 0.1, 0.5])
def test_fast_dropout_drops_at_rate_p_and_keeps_the_mean(p: float) -> None:
    x = torch.ones(2_000_003)  # not a multiple of 4: the tail of the last random word is unused
    with seeded(0):
        y = fast_dropout(x, p)
    dropped = float((y == 0).double().mean())
    sigma = math.sqrt(p * (1 - p) / x.numel())
    assert abs(dropped - p) < 5 * sigma, (dropped, p)
    kept = y[y != 0]
    assert torch.equal(kept, torch.full_like(kept, float(kept[0])))
    assert float(kept[0]) == pytest.approx(1 / (1 - p), rel=2e-5)
    assert float(y.double().mean()) == pytest.approx(1.0, abs=5 * sigma / (1 - p))
    # each of the four 16-bit lanes of a random word drops at rate p (no lane is biased)
    lanes = (y[: x.numel() // 4 * 4] == 0).double().view(-1, 4).mean(dim=0)
    assert torch.all((lanes - p).abs() < 5 * sigma * 2), lanes
    # and masks of successive draws are independent of each other
    with seeded(0):
        a, b = ~keep_mask(x, p)[0], ~keep_mask(x, p)[0]
    both = float((a & b).double().mean())
    assert abs(both - p * p) < 5 * math.sqrt(p * p / x.numel()) + 1e-4


def test_fast_dropout_is_the_identity_when_off_and_seeded() -> None:
    x = torch.randn(1000)
    assert fast_dropout(x, 0.1, training=False) is x
    assert fast_dropout(x, 0.0) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))
    with seeded(3):
        a = fast_dropout(x, 0.2)
    with seeded(3):
        b = fast_dropout(x, 0.2)
    assert torch.equal(a, b)
    xb = x.to(torch.bfloat16)
    with seeded(3):
        c = fast_dropout(xb, 0.2)
    assert c.dtype == torch.bfloat16
    torch.testing.assert_close(c.float(), a, rtol=2**-7, atol=0)  # the same mask, rounded once


def test_training_mode_drops_attention_probabilities() -> None:
    """With only attention dropout on, training outputs vary with the seed and eval outputs do not."""
    net = _net(True, 0.0)
    for layer in net.encoder.layers:
        layer.self_attn.dropout = 0.5  # type: ignore[union-attr]
    net.train()
    with seeded(0):
        a = net(_x())
    with seeded(1):
        b = net(_x())
    assert not torch.equal(a, b)
    net.eval()
    assert torch.equal(net(_x()), net(_x()))


class _Probe(nn.Module):
    """A linear model that records the autocast state and dtype its training steps ran under."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)
        self.seen: list[tuple[bool, bool, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x).squeeze(-1)
        self.seen.append((self.training, torch.is_autocast_enabled("cpu"), out.dtype))
        return out


def _probe_fit(native: bool, monkeypatch: pytest.MonkeyPatch, **cfg: Any) -> _Probe:
    monkeypatch.setattr(train_mod, "cpu_bf16_native", lambda: native)
    x = torch.randn(64, 3)
    y = x.sum(dim=1)
    with seeded(0):
        net = _Probe()
    config = TrainConfig(epochs=1, batch_size=32, device="cpu", **cfg)
    fit_torch(net, lambda f, t: torch.mean((f - t) ** 2), TensorXY(x, y), TensorXY(x, y), config)
    return net


def test_cpu_amp_autocasts_training_steps_only_where_bf16_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    net = _probe_fit(True, monkeypatch, cpu_amp=True)
    train = [s for s in net.seen if s[0]]
    evals = [s for s in net.seen if not s[0]]
    assert train and all(s[1] and s[2] == torch.bfloat16 for s in train)
    assert evals and all(not s[1] and s[2] == torch.float32 for s in evals)  # validation stays float32
    assert all(p.dtype == torch.float32 for p in net.parameters())  # float32 master weights
    for native, cfg in (
        (False, {"cpu_amp": True}),
        (True, {"cpu_amp": False}),
        (True, {"cpu_amp": True, "amp": False}),
    ):
        probe = _probe_fit(native, monkeypatch, **cfg)
        assert all(not s[1] and s[2] == torch.float32 for s in probe.seen), (native, cfg)
    with pytest.raises(ConfigError, match="cpu_amp must be true or false"):
        TrainConfig(cpu_amp="yes")  # type: ignore[arg-type]


def test_defaults_and_flag_validation() -> None:
    minute = MinuteTransformer()
    assert minute.cfg.fast_train and minute.cfg.cpu_amp and minute.cfg.dropout == 0.1
    daily = get_model("voltransformer")
    assert daily.config()["fast_train"] is True and daily.config()["cpu_amp"] is False
    with pytest.raises(ConfigError, match="fast_train must be true or false"):
        MinuteTransformer(fast_train=1)
    with pytest.raises(ConfigError, match="fast_train must be true or false"):
        get_model("voltransformer", fast_train="no")


def test_minute_fit_is_seeded_deterministic_with_the_default_training_path() -> None:
    rng = np.random.default_rng(7)
    r = 1e-3 * rng.standard_t(4, size=1_500)
    cfg = {"epochs": 2, "d_model": 16, "heads": 2, "layers": 2, "ff": 32, "num_threads": 1}
    first = MinuteTransformer(**cfg).fit(r[:1_200])
    again = MinuteTransformer(**cfg).fit(r[:1_200])
    assert first.history is not None and again.history is not None
    assert first.history.train_loss == again.history.train_loss
    np.testing.assert_array_equal(first.forecast(r), again.forecast(r))
    other = MinuteTransformer(**cfg, seed=1).fit(r[:1_200])
    assert not np.array_equal(first.forecast(r), other.forecast(r))
