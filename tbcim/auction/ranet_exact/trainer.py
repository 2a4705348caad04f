"""Training RANet-exact: Adam ascent on the buyer utility, selection on validation profiles.

Per iteration, on a mini-batch of truthful training profiles (bids = costs c):

    loss = −mean_ℓ [U_d(z(c)) − Σ_s p_s(c)] / (b̄ − b_low)

with z and the threshold payments p of (X1)–(X5) (``tbcim/auction/ranet_exact/nets.py``). The
mechanism is truthful for every weight vector, so there is no regret term, no Lagrange multiplier
and no misreport search (the issue's "no Lagrangian is needed"). By Myerson's lemma the objective
equals the expected virtual surplus E[U_d(z) − Σ_s z_s·(c_s + F(c_s)/f(c_s))] for any type
distribution, without the learner having to know F.

After each epoch the validation profiles (drawn from the run's seed, never the test streams) give
the validation buyer utility; the epoch with the highest one is kept, and ``patience`` epochs
without a better one stop the run. Test profiles play no part in training or selection.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tbcim.auction.mechanism import Profiles
from tbcim.auction.ranet.nets import feature_ranges
from tbcim.auction.ranet_exact.config import ExactConfig
from tbcim.auction.ranet_exact.nets import ExactRANet
from tbcim.auction.settings import AuctionSetting
from tbcim.seeding import seed_everything


@dataclass
class ExactTrainResult:
    """A trained RANet-exact with its provenance and per-epoch history."""

    model: ExactRANet
    config: ExactConfig
    seed: int
    history: list[dict[str, Any]]
    selected_epoch: int
    train_seconds: float


def _tensors(profiles: Profiles) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(profiles.bids),
        torch.as_tensor(profiles.data_sizes),
        torch.as_tensor(profiles.emds),
    )


def _objective(
    model: ExactRANet, setting: AuctionSetting, batch: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(buyer utility (B,), true welfare (B,)) at truthful bids, differentiable."""
    bids, sizes, emds = batch
    z, p = model(bids, sizes, emds)
    value = setting.buyer_value_torch(z, sizes, emds)
    return value - p.sum(-1), value - (z * bids).sum(-1)


def train_exact(
    setting: AuctionSetting,
    config: ExactConfig,
    seed: int = 0,
    *,
    log: Callable[[str], None] | None = print,
) -> ExactTrainResult:
    """Train RANet-exact on ``setting`` (deterministic given setting, config and seed)."""
    say = log or (lambda _line: None)
    rng = seed_everything(seed)
    train_profiles = setting.sample(config.n_train, rng)
    val_profiles = setting.sample(config.n_val, rng)
    d_range, emd_range = feature_ranges(train_profiles)
    model = ExactRANet(
        setting, config.hidden, config.segments, config.slope_scale, d_range, emd_range
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    n_batches = config.n_train // config.batch_size
    total = n_batches * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: 1.0 - (1.0 - config.lr_final_factor) * min(it, total) / total
    )
    train_data, val_data = _tensors(train_profiles), _tensors(val_profiles)
    width = setting.bid_range
    history: list[dict[str, Any]] = []
    best: tuple[int, float, dict[str, torch.Tensor]] | None = None
    seconds, iteration, stale = 0.0, 0, 0
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        order = torch.as_tensor(rng.permutation(config.n_train))
        sums = torch.zeros(2, dtype=torch.float64)
        model.train()
        for k in range(n_batches):
            idx = order[k * config.batch_size : (k + 1) * config.batch_size]
            buyer, welfare = _objective(model, setting, tuple(t[idx] for t in train_data))
            loss = -buyer.mean() / width
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            iteration += 1
            sums += torch.stack([buyer.detach().mean(), welfare.detach().mean()])
        model.eval()
        with torch.no_grad():
            val_buyer, val_welfare = _objective(model, setting, val_data)
        seconds += time.perf_counter() - start
        row: dict[str, Any] = {
            "epoch": epoch,
            "iteration": iteration,
            "buyer_utility": float(sums[0]) / n_batches,
            "social_welfare": float(sums[1]) / n_batches,
            "val_buyer_utility": float(val_buyer.mean()),
            "val_social_welfare": float(val_welfare.mean()),
            "seconds": seconds,
        }
        row["selected"] = best is None or row["val_buyer_utility"] > best[1]
        if row["selected"]:
            best = (epoch, row["val_buyer_utility"], copy.deepcopy(model.state_dict()))
            stale = 0
        else:
            stale += 1
        history.append(row)
        say(
            f"epoch {epoch:3d}/{config.epochs} it {iteration:6d} | train: buyer "
            f"{row['buyer_utility']:.5f} welfare {row['social_welfare']:.5f} | val: buyer "
            f"{row['val_buyer_utility']:.5f} welfare {row['val_social_welfare']:.5f} | "
            f"{seconds:.0f}s{' *' if row['selected'] else ''}"
        )
        if config.patience and stale >= config.patience:
            say(f"early stop: {config.patience} epochs without a better validation utility")
            break
    assert best is not None
    model.load_state_dict(best[2])
    model.eval()
    return ExactTrainResult(model, config, seed, history, best[0], seconds)
