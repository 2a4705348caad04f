"""RANet, the learned reverse auction of section III-C (Fig. 4), with IR-safe payments.

Two feed-forward tanh networks read the same normalised input ``(b_s, d_s, θ_s)`` of all S edge
servers (bids scaled to [0, 1] by the bid space, the public data size d and EMD θ scaled to
[0, 1] by ranges fixed from the training profiles):

* **Allocation network** g^w.
  - Single winner: S + 1 logits and a softmax; the extra entry is the buyer's "buy nothing"
    option, so Σ_s z_s ≤ 1 (z_s is ES s's win probability).
  - Multi-winner (TBCIM): one logit per ES and a sigmoid, z_s ∈ [0, 1] is ES s's *inclusion
    probability*; ESs are included independently. When run for real, winners are drawn from z and a
    winner is paid p_s / z_s, so expected payments equal the network's and truthfulness holds in
    expectation (MODEL-NOTES §2). The relaxed buyer value U_d(D = Σ z_s d_s, θ̄) is the setting's.
* **Payment network** p^w: one sigmoid price score p̃_s ∈ [0, 1] per ES and the IR-safe payment
  (MODEL-NOTES §2, replacing the paper's p_s = p̃_s·z_s·b_s)

      p_s = z_s·(b_s + p̃_s·(b̄ − b_s)),

  so a truthful ES's utility p_s − z_s·c_s = z_s·p̃_s·(b̄ − c_s) ≥ 0 for every bid profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tbcim.auction.mechanism import Profiles
from tbcim.auction.settings import AuctionSetting
from tbcim.errors import ConfigError

#: Input features per ES: bid, data size d_s, EMD θ_s.
FEATURES = ("bid", "data_size", "emd")


def check_profile_shapes(setting: AuctionSetting, *arrays: torch.Tensor) -> None:
    """Bids, data sizes and EMDs must each be (batch, S) for ``setting``, all the same shape."""
    for field, array in zip(FEATURES, arrays, strict=True):
        if array.ndim != 2 or array.shape[1] != setting.n_servers:
            raise ConfigError(
                field,
                f"expected shape (batch, {setting.n_servers}) for setting "
                f"{setting.name!r}, got {tuple(array.shape)}",
            )
    if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
        raise ConfigError("profiles", "bids, data sizes and EMDs must have the same shape")


def _mlp(n_in: int, n_out: int, hidden: Sequence[int]) -> nn.Sequential:
    """Fully connected layers with tanh activations (section III-C), Glorot-initialised."""
    layers: list[nn.Module] = []
    width = n_in
    for size in hidden:
        layers += [nn.Linear(width, size), nn.Tanh()]
        width = size
    layers.append(nn.Linear(width, n_out))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def feature_ranges(profiles: Profiles) -> tuple[tuple[float, float], tuple[float, float]]:
    """(min, max) of the public data sizes and EMDs over a profile set (the training profiles)."""
    return (
        (float(profiles.data_sizes.min()), float(profiles.data_sizes.max())),
        (float(profiles.emds.min()), float(profiles.emds.max())),
    )


class RANet(nn.Module):
    """The learned reverse auction; implements the ``Mechanism`` protocol.

    ``outcome`` takes validated numpy ``Profiles``; ``torch_outcome`` is the differentiable
    version used by training and by the regret evaluator's gradient refinement.
    """

    name = "ranet"
    feature_low: torch.Tensor  # (3,) buffers: lower end and span of bid, d, θ
    feature_span: torch.Tensor

    def __init__(
        self,
        setting: AuctionSetting,
        hidden: Sequence[int] = (100, 100),
        data_size_range: tuple[float, float] = (0.0, 1.0),
        emd_range: tuple[float, float] = (0.0, 1.0),
        price_score_init: float = 0.5,
    ) -> None:
        super().__init__()
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ConfigError("hidden", f"needs at least one layer of positive width, got {hidden}")
        if not 0.0 < price_score_init < 1.0:
            raise ConfigError("price_score_init", f"must lie in (0, 1), got {price_score_init}")
        self.setting = setting
        self.hidden = tuple(int(h) for h in hidden)
        n_servers = setting.n_servers
        n_in = len(FEATURES) * n_servers
        n_alloc = n_servers if setting.multi_winner else n_servers + 1
        self.allocation_net = _mlp(n_in, n_alloc, self.hidden)
        self.payment_net = _mlp(n_in, n_servers, self.hidden)
        # Initial price scores p̃ ≈ price_score_init (output bias = its logit): 0.5 by default;
        # a small value starts near pay-as-bid, so buying is profitable from the first batch.
        last = self.payment_net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.constant_(last.bias, float(np.log(price_score_init / (1.0 - price_score_init))))
        lows, spans = [], []
        for low, high in ((setting.bid_low, setting.bid_high), data_size_range, emd_range):
            lows.append(low)
            # A constant public feature (e.g. the single-winner settings) becomes a zero input.
            spans.append(high - low if high > low else float("inf"))
        self.register_buffer("feature_low", torch.tensor(lows, dtype=torch.float32))
        self.register_buffer("feature_span", torch.tensor(spans, dtype=torch.float32))

    @property
    def n_servers(self) -> int:
        return self.setting.n_servers

    def forward(
        self, bids: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, p) for a batch of (B, S) tensors; outputs have the dtype of ``bids``."""
        check_profile_shapes(self.setting, bids, data_sizes, emds)
        dtype = self.feature_low.dtype
        raw = torch.stack([bids.to(dtype), data_sizes.to(dtype), emds.to(dtype)], dim=-1)
        x = ((raw - self.feature_low) / self.feature_span).flatten(1)  # (B, 3S), ES-major
        logits = self.allocation_net(x)
        if self.setting.multi_winner:
            z = torch.sigmoid(logits)
        else:
            z = torch.softmax(logits, dim=-1)[:, : self.n_servers]
        price_score = torch.sigmoid(self.payment_net(x))
        b = bids.to(dtype)
        p = z * (b + price_score * (self.setting.bid_high - b))
        return z.to(bids.dtype), p.to(bids.dtype)

    def torch_outcome(
        self, bids: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (z, p) for the regret evaluator (gradient w.r.t. the bids)."""
        return self(bids, data_sizes, emds)

    def outcome(self, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
        """(z, p) as float64 arrays; wrong S, NaN/inf or bids outside V raise ConfigError."""
        profiles.validate(self.setting)
        with torch.no_grad():
            z, p = self(
                torch.as_tensor(profiles.bids),
                torch.as_tensor(profiles.data_sizes),
                torch.as_tensor(profiles.emds),
            )
        return z.numpy().astype(np.float64), p.numpy().astype(np.float64)
