"""Auction settings: who bids, what the buyer values, where bids live (section III, V-A).

* ``single-S`` (S = 1..5): one winner or none, value V = 1 (U1), costs iid U[0, 1], bid space
  [0, 1]. Myerson's optimum is known (eq. (S1) of ``docs/auction-mechanisms.md``).
* ``tbcim-S`` (S = 3, 5, 10): multi-winner, U_d = a5·q(D, θ̄) (U2)–(U3). Each ES type
  (cost, d_s, θ_s) is an ES at its lower-level Stackelberg equilibrium
  (:func:`tbcim.lower.pricing.server_types`: cost = Σ V_i* + c^b_s). Profiles are drawn iid from a
  fixed pool of ``pool_size`` types built once from ``pool_seed``; the top of the bid space is
  the ``bid_quantile`` quantile of the pool's costs, b̄ (S2), and types costlier than b̄ are
  dropped from the pool (they would not bid under the reserve b̄).
  ``value_model`` chooses the buyer value of a fractional allocation: "relaxed" (U2), the
  MODEL-NOTES training relaxation and the default, or "realised" (U4), the exact expected value
  when winners are drawn from z (S ≤ 12).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from tbcim.auction.mechanism import Profiles, as_batch
from tbcim.auction.utility import (
    MAX_ENUMERATED_SERVERS,
    realised_tbcim_value,
    realised_tbcim_value_torch,
    tbcim_value,
    tbcim_value_torch,
)
from tbcim.configfile import check_table, check_types, dataclass_from_table, read_config
from tbcim.errors import ConfigError
from tbcim.lower.pricing import server_types
from tbcim.lower.quality import QualityParams

if TYPE_CHECKING:  # torch is imported only by the callers that train (a light CLI)
    import torch

Array = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class AuctionSetting:
    """Common fields of every setting; subclasses define the type distribution and U_d."""

    name: str
    n_servers: int
    multi_winner: bool
    bid_low: float
    bid_high: float
    optimal_buyer_utility: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_servers, bool) or not isinstance(self.n_servers, int):
            raise ConfigError("n_servers", f"must be an integer, got {self.n_servers!r}")
        if self.n_servers < 1:
            raise ConfigError("n_servers", f"must be at least 1, got {self.n_servers}")
        if not (np.isfinite(self.bid_low) and np.isfinite(self.bid_high)):
            raise ConfigError("bid_low", "the bid space must be finite")
        if self.bid_low < 0 or self.bid_high <= self.bid_low:
            raise ConfigError(
                "bid_high", f"need 0 <= bid_low < bid_high, got [{self.bid_low}, {self.bid_high}]"
            )

    @property
    def bid_range(self) -> float:
        """b̄ − b_low, the unit in which regret is reported."""
        return self.bid_high - self.bid_low

    def sample(self, n: int, rng: np.random.Generator) -> Profiles:
        """n iid type profiles; the true costs are in ``.bids``."""
        raise NotImplementedError

    def buyer_value(self, z: Array, profiles: Profiles) -> Array:
        """U_d(z) for each profile, shape (B,)."""
        raise NotImplementedError

    def buyer_value_torch(
        self, z: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor
    ) -> torch.Tensor:
        """Differentiable U_d(z), shape (B,)."""
        raise NotImplementedError

    def _check_z(self, z: Array, profiles: Profiles) -> Array:
        z = as_batch("allocation", z)
        if z.shape != profiles.shape:
            raise ConfigError("allocation", f"shape {z.shape} differs from {profiles.shape}")
        return z


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError("samples", f"must be a positive integer, got {n!r}")


@dataclass(frozen=True, kw_only=True)
class UnitValueSetting(AuctionSetting):
    """Single winner, value V per unit bought (U1), costs iid U[bid_low, bid_high]."""

    value: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.multi_winner:
            raise ConfigError("multi_winner", "unit-value settings sell a single item")
        if not np.isfinite(self.value) or self.value <= 0:
            raise ConfigError("value", f"must be positive and finite, got {self.value}")

    def sample(self, n: int, rng: np.random.Generator) -> Profiles:
        _check_count(n)
        shape = (int(n), self.n_servers)
        # No public data matters here: d_s = 0 and θ_s = 0 for every ES.
        costs = rng.uniform(self.bid_low, self.bid_high, shape)
        return Profiles(costs, np.zeros(shape), np.zeros(shape))

    def buyer_value(self, z: Array, profiles: Profiles) -> Array:
        return self.value * self._check_z(z, profiles).sum(axis=1)

    def buyer_value_torch(
        self, z: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor
    ) -> torch.Tensor:
        return self.value * z.sum(dim=-1)


@dataclass(frozen=True)
class TypePool:
    """Pre-generated ES types (cost, data size, EMD, workers), arrays of shape (pool size,)."""

    cost: Array
    data_size: Array
    emd: Array
    n_workers: NDArray[np.int64]

    @property
    def size(self) -> int:
        return int(self.cost.shape[0])


@lru_cache(maxsize=8)
def build_pool(pool_size: int, pool_seed: int, g_e: float | None) -> TypePool:
    """``pool_size`` ES types from the lower level, drawn with ``pool_seed`` (cached)."""
    types = server_types(np.random.default_rng(pool_seed), pool_size, g_e=g_e)
    return TypePool(
        cost=np.asarray(types["cost"], dtype=np.float64),
        data_size=np.asarray(types["data_size"], dtype=np.float64),
        emd=np.asarray(types["emd"], dtype=np.float64),
        n_workers=np.asarray(types["n_workers"], dtype=np.int64),
    )


def truncate_pool(pool: TypePool, bid_high: float) -> TypePool:
    """The types whose cost is at most the reserve b̄ (S2)."""
    keep = pool.cost <= bid_high
    return TypePool(pool.cost[keep], pool.data_size[keep], pool.emd[keep], pool.n_workers[keep])


VALUE_MODELS = ("relaxed", "realised")


@dataclass(frozen=True, kw_only=True)
class TbcimSetting(AuctionSetting):
    """Multi-winner TBCIM setting: U_d = a5·q(D, θ̄) over a pool of lower-level ES types."""

    quality: QualityParams = field(default_factory=QualityParams)
    pool_size: int = 20_000
    pool_seed: int = 0
    bid_quantile: float = 0.99
    g_e: float | None = None
    value_model: str = "relaxed"
    pool: TypePool | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.value_model not in VALUE_MODELS:
            raise ConfigError(
                "value_model", f"must be one of {VALUE_MODELS}, got {self.value_model!r}"
            )
        if self.value_model == "realised" and self.n_servers > MAX_ENUMERATED_SERVERS:
            raise ConfigError(
                "value_model", f"'realised' enumerates 2^S sets; S <= {MAX_ENUMERATED_SERVERS}"
            )
        if self.pool is None or self.pool.size == 0:
            raise ConfigError("pool", "a TBCIM setting needs a non-empty pool of ES types")
        costs = self.pool.cost
        if float(costs.max()) > self.bid_high or float(costs.min()) < self.bid_low:
            raise ConfigError("bid_high", "every pooled ES cost must lie in the bid space")

    def sample(self, n: int, rng: np.random.Generator) -> Profiles:
        _check_count(n)
        assert self.pool is not None
        index = rng.integers(0, self.pool.size, size=(int(n), self.n_servers))
        return Profiles(self.pool.cost[index], self.pool.data_size[index], self.pool.emd[index])

    def buyer_value(self, z: Array, profiles: Profiles) -> Array:
        z = self._check_z(z, profiles)
        value = realised_tbcim_value if self.value_model == "realised" else tbcim_value
        return value(z, profiles.data_sizes, profiles.emds, self.quality)

    def buyer_value_torch(
        self, z: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor
    ) -> torch.Tensor:
        value = realised_tbcim_value_torch if self.value_model == "realised" else tbcim_value_torch
        return value(z, data_sizes, emds, self.quality)


def myerson_optimal_buyer_utility(n_servers: int, value: float, low: float, high: float) -> float:
    """Closed form of E[(V − J(c_(1)))^+], J(c) = 2c − low, costs iid U[low, high] (S1).

    With m = min((V + low)/2, high) and R = high − low:
    E = (V − J(m))^+ + 2(m − low) − 2R/(S+1)·(1 − ((high − m)/R)^(S+1)).
    """
    width = high - low
    m = min((value + low) / 2.0, high)
    tail = 1.0 - ((high - m) / width) ** (n_servers + 1)
    at_top = max(0.0, value - (2.0 * m - low))
    return at_top + 2.0 * (m - low) - 2.0 * width / (n_servers + 1) * tail


def single_setting(
    n_servers: int, value: float = 1.0, bid_low: float = 0.0, bid_high: float = 1.0, name: str = ""
) -> UnitValueSetting:
    """A single-winner unit-value setting with its Myerson optimum."""
    return UnitValueSetting(
        name=name or f"single-{n_servers}",
        n_servers=n_servers,
        multi_winner=False,
        bid_low=bid_low,
        bid_high=bid_high,
        optimal_buyer_utility=myerson_optimal_buyer_utility(n_servers, value, bid_low, bid_high),
        value=value,
    )


def tbcim_setting(
    n_servers: int,
    pool_size: int = 20_000,
    pool_seed: int = 0,
    bid_quantile: float = 0.99,
    g_e: float | None = None,
    quality: QualityParams | None = None,
    name: str = "",
    value_model: str = "relaxed",
) -> TbcimSetting:
    """A TBCIM setting over a fresh (cached) pool; b̄ = ``bid_quantile`` quantile of costs (S2)."""
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 10:
        raise ConfigError("pool_size", f"must be an integer >= 10, got {pool_size!r}")
    if not 0.5 <= bid_quantile <= 1.0:
        raise ConfigError("bid_quantile", f"must lie in [0.5, 1], got {bid_quantile}")
    if isinstance(pool_seed, bool) or not isinstance(pool_seed, int):
        raise ConfigError("pool_seed", f"must be an integer, got {pool_seed!r}")
    full = build_pool(pool_size, pool_seed, g_e)
    bid_high = float(np.quantile(full.cost, bid_quantile))
    return TbcimSetting(
        name=name or f"tbcim-{n_servers}",
        n_servers=n_servers,
        multi_winner=True,
        bid_low=0.0,
        bid_high=bid_high,
        optimal_buyer_utility=None,
        quality=quality or QualityParams(),
        pool_size=pool_size,
        pool_seed=pool_seed,
        bid_quantile=bid_quantile,
        g_e=g_e,
        value_model=value_model,
        pool=truncate_pool(full, bid_high),
    )


SINGLE_NAMES = tuple(f"single-{s}" for s in range(1, 6))
TBCIM_NAMES = ("tbcim-3", "tbcim-5", "tbcim-10")
SETTING_NAMES = SINGLE_NAMES + TBCIM_NAMES


def get_setting(name: str) -> AuctionSetting:
    """The named built-in setting; an unknown name is a ConfigError on field ``setting``."""
    if name not in SETTING_NAMES:
        raise ConfigError("setting", f"unknown setting {name!r}; choose one of {SETTING_NAMES}")
    kind, count = name.split("-")
    return single_setting(int(count)) if kind == "single" else tbcim_setting(int(count))


#: The keys a ``[setting]`` table may override, with their types, by kind of base setting.
SINGLE_KEYS: dict[str, Any] = {
    "name": str,
    "n_servers": int,
    "value": float,
    "bid_low": float,
    "bid_high": float,
}
TBCIM_KEYS: dict[str, Any] = {
    "name": str,
    "n_servers": int,
    "pool_size": int,
    "pool_seed": int,
    "bid_quantile": float,
    "g_e": float | None,
    "value_model": str,
}


def setting_from_dict(config: dict[str, Any]) -> AuctionSetting:
    """A setting from ``{"base": NAME, **overrides}`` (a ``[setting]`` table).

    Read through :mod:`tbcim.configfile`: unknown keys, wrong types and out-of-range values are
    ConfigErrors naming the key relative to the table (``value``, ``quality.a9``).
    """
    table = check_table(config, "setting")
    if "base" not in table:
        raise ConfigError("base", f"missing; name a base setting from {SETTING_NAMES}")
    base = get_setting(str(table["base"]))
    overrides = {k: v for k, v in table.items() if k not in ("base", "quality")}
    if isinstance(base, UnitValueSetting):
        values = check_types(overrides, "", SINGLE_KEYS)
        if "quality" in table:
            raise ConfigError("quality", f"unknown key; known: {sorted(SINGLE_KEYS)}")
        merged = {
            "n_servers": base.n_servers,
            "value": base.value,
            "bid_low": base.bid_low,
            "bid_high": base.bid_high,
            **values,
        }
        return single_setting(**merged)
    assert isinstance(base, TbcimSetting)
    values = check_types(overrides, "", TBCIM_KEYS)
    quality = dataclass_from_table(QualityParams, table.get("quality"), "quality", base.quality)
    merged = {
        "n_servers": base.n_servers,
        "pool_size": base.pool_size,
        "pool_seed": base.pool_seed,
        "bid_quantile": base.bid_quantile,
        "g_e": base.g_e,
        "value_model": base.value_model,
        **values,
    }
    return tbcim_setting(quality=quality, **merged)


def load_setting_config(path: str | Path) -> AuctionSetting:
    """A setting from a TOML or JSON file: ``base = "tbcim-5"`` plus overrides."""
    return setting_from_dict(read_config(path))


def setting_for_model(
    state: Mapping[str, Any], path: str | Path, setting: AuctionSetting | None
) -> AuctionSetting:
    """The setting a saved learner's ``state`` was trained for: ``setting`` if given and it
    matches (name, number of ESs, bid space), else the one saved in the file."""
    if setting is None:
        setting = setting_from_dict(dict(state["setting_spec"]))
    if state["setting"] != setting.name:
        raise ConfigError(
            "model", f"{path} was trained for setting {state['setting']!r}, not {setting.name!r}"
        )
    if state["n_servers"] != setting.n_servers:
        raise ConfigError(
            "model",
            f"{path} has {state['n_servers']} ESs but setting {setting.name!r} has "
            f"{setting.n_servers}",
        )
    if list(state["bid_space"]) != [setting.bid_low, setting.bid_high]:
        raise ConfigError(
            "model",
            f"{path} was trained on the bid space {state['bid_space']} but setting "
            f"{setting.name!r} now has [{setting.bid_low}, {setting.bid_high}]",
        )
    return setting
