"""Random markets with the distributions of section VI-A (sellers bid their true costs).

* Buyer l: v_l = α1_l·log(1 + α2·d_l) with α1_l ~ U[8, 12], α2 = 1, d_l = 5000.
* Data-seller m for buyer l: data size d_{m,l} ~ U[10, 30] (in units of 500), unit cost
  σ_{m,l} ~ U[0.0002, 0.0004]; cost c_{m,l} = 500·d_{m,l}·σ_{m,l} (in [1, 6]).
* UAV-seller n: flying distance t_n ~ U[10, 100] m, unit flying cost λ_n ~ U[0.02, 0.05];
  buyer l's model size s_l ~ U[100, 500] KB, link rate r_{n,m} ~ U[100, 300] KB/s between UAV n
  and data-seller m; cost e_{l,m,n} = w·λ_n·t_n + s_l / r_{n,m}. The paper estimates the UAV's
  service cost by the model-transmission delay (its footnote 7, [32]), and its Table III UAV
  bids (0.81–1.83) fit the delay alone (range 0.33–5) but not delay plus flying cost (flying
  alone is 0.2–5, mean ≈ 1.9), so the flying weight w (``flight_weight``) defaults to 0;
  w = 1 adds the flying cost λ_n·t_n (docs/matching.md).

Valuations are per buyer only (MODEL-NOTES §5), so v ≈ 68–102 dwarfs joint bids ≈ 2–15 and every
triple is feasible at these settings; infeasible triples arise with other settings or bids.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from tbcim.errors import ConfigError
from tbcim.matching.model import MatchingMarket


@dataclass(frozen=True)
class ScenarioConfig:
    """Section VI-A's ranges (each a (low, high) pair) and constants."""

    alpha1: tuple[float, float] = (8.0, 12.0)
    alpha2: float = 1.0
    demand: float = 5000.0
    data_size: tuple[float, float] = (10.0, 30.0)
    data_unit: float = 500.0
    unit_data_cost: tuple[float, float] = (0.0002, 0.0004)
    fly_distance: tuple[float, float] = (10.0, 100.0)
    unit_fly_cost: tuple[float, float] = (0.02, 0.05)
    model_size: tuple[float, float] = (100.0, 500.0)
    link_rate: tuple[float, float] = (100.0, 300.0)
    flight_weight: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            values = value if isinstance(value, tuple) else (value,)
            if not all(math.isfinite(v) and v >= 0 for v in values):
                raise ConfigError(f"scenario.{name}", f"must be finite and >= 0, got {value}")
            if isinstance(value, tuple) and not (len(value) == 2 and value[0] <= value[1]):
                raise ConfigError(f"scenario.{name}", f"must be a (low, high) range, got {value}")
        if self.link_rate[0] <= 0:
            raise ConfigError("scenario.link_rate", "must be positive")


def _count(name: str, value: int) -> int:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(name, f"must be a positive integer, got {value!r}")
    return int(value)


def generate(
    buyers: int,
    data_sellers: int,
    uav_sellers: int,
    rng: np.random.Generator,
    config: ScenarioConfig = ScenarioConfig(),
) -> MatchingMarket:
    """A truthful market (bids = costs) of the given size drawn from ``config``."""
    L = _count("buyers", buyers)
    M = _count("data_sellers", data_sellers)
    N = _count("uav_sellers", uav_sellers)
    c = config
    alpha1 = rng.uniform(*c.alpha1, size=L)
    valuations = alpha1 * np.log1p(c.alpha2 * c.demand)
    size = rng.uniform(*c.data_size, size=(L, M)) * c.data_unit
    data_cost = size * rng.uniform(*c.unit_data_cost, size=(L, M))
    flying = rng.uniform(*c.fly_distance, size=N) * rng.uniform(*c.unit_fly_cost, size=N)
    model = rng.uniform(*c.model_size, size=L)
    rate = rng.uniform(*c.link_rate, size=(M, N))
    uav_cost = c.flight_weight * flying[None, None, :] + model[:, None, None] / rate[None, :, :]
    return MatchingMarket(valuations=valuations, data_bids=data_cost, uav_bids=uav_cost)
