"""Algorithm 1: RANet training by the augmented Lagrangian (6)–(7).

Per iteration t on a mini-batch L_t of the training profiles (truthful bids b = costs c):

1. Misreports. Each ES's misreport b'_s is warm-started from the cache of that training profile
   (first visit: uniform on the bid space), optionally re-seeded from a coarse grid, then moved by
   R projected gradient-ascent steps b'_s ← Π_V[b'_s + γ ∇_{b'_s} u_s(b'_s, b_{-s})] on the
   normalised bid; the result is cached for the next visit (section V-A).
2. Empirical regret (4) per ES, with the ES utility u_s = p_s − z_s·c_s (MODEL-NOTES §2, not the
   paper's welfare U^w):  rgt_s = mean_ℓ max(0, u_s(b'_s, b_-s) − u_s(b)) / (b̄ − b_low).
3. One Adam step on (6)

       C_ρ(w; λ) = −mean_ℓ U(b)/(b̄ − b_low) + Σ_s λ_s·rgt_s + (ρ/2)·(Σ_s rgt_s)²,

   where U(b) = U_d(g(b)) − Σ_s p_s is the buyer utility (the paper's "social welfare" (1)).
   Both terms are divided by the bid range so the hyper-parameters carry across settings.
4. Every Q iterations λ_s ← λ_s + ρ·rgt_s (7b), with rgt_s that iteration's batch regret (as
   RegretNet does, rather than a fresh pass at w^{t+1}); every ``rho_every`` iterations
   ρ ← min(ρ + ``rho_increment``, ``rho_max``) (a schedule; the paper keeps ρ = 1).

After each epoch the held-out validation profiles are scored with the project's grid regret
evaluator (``tbcim.auction.regret``), a progress line is printed, and a checkpoint can be written.
The returned model is the selected epoch's (see ``TrainConfig.target_regret``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tbcim.auction.mechanism import Profiles
from tbcim.auction.ranet.config import TrainConfig
from tbcim.auction.ranet.nets import RANet, feature_ranges
from tbcim.auction.regret import regret_per_profile
from tbcim.auction.settings import AuctionSetting
from tbcim.errors import ConfigError
from tbcim.results import save_torch
from tbcim.seeding import seed_everything

CHECKPOINT_FORMAT = "tbcim-ranet-checkpoint/1"
#: A mini-batch: truthful bids (= costs), data sizes and EMDs, each (B, S).
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _tensors(profiles: Profiles) -> Batch:
    bids, sizes, emds = (
        torch.as_tensor(a, dtype=torch.float32)
        for a in (profiles.bids, profiles.data_sizes, profiles.emds)
    )
    return bids, sizes, emds


def misreport_outcome(
    model: RANet,
    bids: torch.Tensor,
    data_sizes: torch.Tensor,
    emds: torch.Tensor,
    misreports: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_s, p_s) of each ES s when s alone reports ``misreports[:, s]``, all shaped (B, S).

    The B·S unilateral deviations run as one batch: row (ℓ, s) is profile ℓ with column s replaced.
    """
    batch, n = bids.shape
    own = torch.eye(n, dtype=torch.bool)
    deviated = torch.where(own, misreports[:, :, None], bids[:, None, :])  # (B, S, S)
    z, p = model(
        deviated.reshape(batch * n, n),
        data_sizes.repeat_interleave(n, dim=0),
        emds.repeat_interleave(n, dim=0),
    )
    return (
        z.reshape(batch, n, n).diagonal(dim1=1, dim2=2),
        p.reshape(batch, n, n).diagonal(dim1=1, dim2=2),
    )


@dataclass
class TrainResult:
    """A trained mechanism with its provenance and per-epoch history."""

    model: RANet
    config: TrainConfig
    seed: int
    history: list[dict[str, Any]]
    selected_epoch: int
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Runs Algorithm 1 for one setting, config and seed (deterministic given all three)."""

    def __init__(
        self,
        setting: AuctionSetting,
        config: TrainConfig,
        seed: int,
        *,
        log: Callable[[str], None] | None = print,
        checkpoint_path: str | Path | None = None,
    ) -> None:
        self.setting = setting
        self.config = config
        self.seed = seed
        self.log = log or (lambda _line: None)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.bid_range = setting.bid_high - setting.bid_low
        self.rng = seed_everything(seed)
        self.train_profiles = setting.sample(config.n_train, self.rng)
        self.val_profiles = setting.sample(config.n_val, self.rng)
        d_range, emd_range = feature_ranges(self.train_profiles)
        self.model = RANet(setting, config.hidden, d_range, emd_range, config.price_score_init)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.bids, self.data_sizes, self.emds = _tensors(self.train_profiles)
        self.cache = torch.as_tensor(
            self.rng.uniform(0.0, 1.0, size=self.bids.shape), dtype=torch.float32
        )  # normalised misreports, one per training profile and ES
        self.lambdas = torch.full((setting.n_servers,), float(config.lambda_init))
        self.rho = float(config.rho_init)
        self.iteration = 0
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.selected: tuple[int, dict[str, torch.Tensor]] | None = None
        self.stale = 0  # feasible epochs since the last selected one (early stopping)
        self.seconds = 0.0

    # ----- Algorithm 1, one iteration -------------------------------------------------------

    def _misreport_utility(
        self, bids: torch.Tensor, sizes: torch.Tensor, emds: torch.Tensor, mis: torch.Tensor
    ) -> torch.Tensor:
        """u_s(b'_s, b_-s) / (b̄ − b_low) for normalised misreports ``mis`` (B, S)."""
        raw = self.setting.bid_low + mis * self.bid_range
        z, p = misreport_outcome(self.model, bids, sizes, emds, raw)
        return (p - z * bids) / self.bid_range

    def _grid_reseed(self, batch: Batch, mis: torch.Tensor) -> torch.Tensor:
        """Replace each misreport by the best grid point where that point beats it."""
        with torch.no_grad():
            best = mis.clone()
            best_u = self._misreport_utility(*batch, mis)
            for point in torch.linspace(0.0, 1.0, self.config.misreport_grid):
                candidate = torch.full_like(mis, float(point))
                u = self._misreport_utility(*batch, candidate)
                better = u > best_u
                best = torch.where(better, candidate, best)
                best_u = torch.where(better, u, best_u)
        return best

    def _optimise_misreports(self, idx: torch.Tensor, batch: Batch) -> torch.Tensor:
        cfg = self.config
        mis = self.cache[idx]
        if cfg.misreport_grid and self.iteration % cfg.grid_every == 0:
            mis = self._grid_reseed(batch, mis)
        for _ in range(cfg.misreport_steps):
            mis = mis.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self._misreport_utility(*batch, mis).sum(), mis)
            mis = (mis + cfg.misreport_lr * grad).clamp(0.0, 1.0)
        mis = mis.detach()
        self.cache[idx] = mis
        return mis

    def _step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        batch: Batch = (self.bids[idx], self.data_sizes[idx], self.emds[idx])
        mis = self._optimise_misreports(idx, batch)
        bids, sizes, emds = batch
        z, p = self.model(bids, sizes, emds)
        value = self.setting.buyer_value_torch(z, sizes, emds)
        buyer_utility = value - p.sum(-1)
        u_true = (p - z * bids) / self.bid_range
        regret = torch.relu(self._misreport_utility(*batch, mis) - u_true).mean(0)  # (S,)
        loss = (
            -buyer_utility.mean() / self.bid_range
            + (self.lambdas * regret).sum()
            + 0.5 * self.rho * regret.sum() ** 2
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        cfg = self.config
        if self.iteration % cfg.lambda_every == 0:
            self.lambdas = self.lambdas + self.rho * regret.detach()
        if self.iteration % cfg.rho_every == 0:
            self.rho = min(self.rho + cfg.rho_increment, cfg.rho_max)
        return {
            "buyer_utility": buyer_utility.detach().mean(),
            "social_welfare": (value - (z * bids).sum(-1)).detach().mean(),
            "regret": regret.detach(),
        }

    # ----- epochs, validation, selection ------------------------------------------------------

    def _validate(self) -> dict[str, float]:
        profiles = self.val_profiles
        z, p = self.model.outcome(profiles)
        value = self.setting.buyer_value(z, profiles)
        regret = (
            regret_per_profile(
                self.model, profiles, self.setting, grid_points=self.config.val_grid, refine_steps=0
            )
            / self.bid_range
        )
        return {
            "val_buyer_utility": float(np.mean(value - p.sum(-1))),
            "val_social_welfare": float(np.mean(value - (z * profiles.bids).sum(-1))),
            "val_regret_mean": float(regret.mean()),
            "val_regret_max": float(regret.max()),
        }

    def _feasible(self, row: dict[str, Any]) -> bool:
        return bool(row["val_regret_mean"] <= self.config.target_regret)

    def _select(self, row: dict[str, Any]) -> bool:
        """Keep this epoch if it is the best feasible one (or the least-regret one so far).

        Also counts ``stale``: feasible epochs since the last selection (infeasible epochs, e.g.
        while the network still learns to buy at all, neither count nor reset it).
        """

        def key(r: dict[str, Any]) -> tuple[bool, float]:
            feasible = self._feasible(r)
            return feasible, r["val_buyer_utility"] if feasible else -r["val_regret_mean"]

        if self.selected is not None and key(row) <= key(self.history[self.selected[0] - 1]):
            self.stale += int(self._feasible(row))
            return False
        self.selected = (row["epoch"], copy.deepcopy(self.model.state_dict()))
        self.stale = 0
        return True

    def _epoch(self) -> dict[str, Any]:
        cfg = self.config
        start = time.perf_counter()
        order = torch.as_tensor(self.rng.permutation(cfg.n_train))
        n_batches = cfg.n_train // cfg.batch_size
        sums: dict[str, torch.Tensor] = {}
        self.model.train()
        for k in range(n_batches):
            stats = self._step(order[k * cfg.batch_size : (k + 1) * cfg.batch_size])
            for key, value in stats.items():
                sums[key] = sums.get(key, 0) + value
        self.model.eval()
        self.epoch += 1
        row: dict[str, Any] = {
            "epoch": self.epoch,
            "iteration": self.iteration,
            "buyer_utility": float(sums["buyer_utility"]) / n_batches,
            "social_welfare": float(sums["social_welfare"]) / n_batches,
            "regret_mean": float(sums["regret"].mean()) / n_batches,
            "regret_per_es": (sums["regret"] / n_batches).tolist(),
        }
        row.update(self._validate())
        row["lambda"] = self.lambdas.tolist()
        row["rho"] = self.rho
        self.seconds += time.perf_counter() - start
        row["seconds"] = self.seconds
        self.history.append(row)
        row["selected"] = self._select(row)
        return row

    def _format(self, row: dict[str, Any]) -> str:
        lam = ", ".join(f"{v:.2f}" for v in row["lambda"])
        return (
            f"epoch {row['epoch']:3d}/{self.config.epochs} it {row['iteration']:6d} | train: "
            f"buyer {row['buyer_utility']:.4f} welfare {row['social_welfare']:.4f} "
            f"rgt {row['regret_mean']:.2e} | val: buyer {row['val_buyer_utility']:.4f} "
            f"welfare {row['val_social_welfare']:.4f} rgt {row['val_regret_mean']:.2e} "
            f"(max {row['val_regret_max']:.2e}) | λ [{lam}] ρ {row['rho']:.2f} | "
            f"{row['seconds']:.0f}s{' *' if row['selected'] else ''}"
        )

    def run(self) -> TrainResult:
        """Train to the configured number of epochs (or early stop); return the selected model."""
        cfg = self.config
        while self.epoch < cfg.epochs:
            row = self._epoch()
            self.log(self._format(row))
            if self.checkpoint_path is not None:
                self.save_checkpoint(self.checkpoint_path)
            assert self.selected is not None
            if cfg.patience and self.stale >= cfg.patience:
                self.log(f"early stop: {cfg.patience} feasible epochs without a better one")
                break
        assert self.selected is not None
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.selected[1])
        model.eval()
        return TrainResult(model, cfg, self.seed, self.history, self.selected[0], self.seconds)

    # ----- checkpoints (resume a run exactly) -------------------------------------------------

    def save_checkpoint(self, path: str | Path) -> None:
        assert self.selected is not None
        save_torch(
            path,
            {
                "format": CHECKPOINT_FORMAT,
                "setting": self.setting.name,
                "config": self.config.to_dict(),
                "seed": self.seed,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "cache": self.cache,
                "lambdas": self.lambdas,
                "rho": self.rho,
                "iteration": self.iteration,
                "epoch": self.epoch,
                "history": self.history,
                "selected_epoch": self.selected[0],
                "selected_model": self.selected[1],
                "stale": self.stale,
                "seconds": self.seconds,
                "rng": self.rng.bit_generator.state,
            },
        )

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint of the same setting, config and seed (``epochs`` may grow)."""
        state = torch.load(Path(path), weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError("checkpoint", f"{path} is not a RANet training checkpoint")

        def run_config(values: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in values.items() if k != "epochs"}

        for key, theirs, mine in (
            ("setting", state["setting"], self.setting.name),
            ("config", run_config(state["config"]), run_config(self.config.to_dict())),
            ("seed", state["seed"], self.seed),
        ):
            if theirs != mine:
                raise ConfigError("checkpoint", f"{path} was written with a different {key}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.cache = state["cache"]
        self.lambdas = state["lambdas"]
        self.rho = state["rho"]
        self.iteration = state["iteration"]
        self.epoch = state["epoch"]
        self.history = state["history"]
        self.selected = (state["selected_epoch"], state["selected_model"])
        self.stale = state["stale"]
        self.seconds = state["seconds"]
        self.rng.bit_generator.state = state["rng"]


def train(
    setting: AuctionSetting,
    config: TrainConfig,
    seed: int = 0,
    *,
    log: Callable[[str], None] | None = print,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Run Algorithm 1 (resuming from ``checkpoint_path`` if ``resume`` and it exists)."""
    trainer = Trainer(setting, config, seed, log=log, checkpoint_path=checkpoint_path)
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        trainer.load_checkpoint(checkpoint_path)
        log and log(f"resumed from {checkpoint_path} at epoch {trainer.epoch}")
    return trainer.run()
