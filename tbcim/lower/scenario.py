"""Random lower-level markets: ESs with 3–10 candidate EDs each (the paper's section V-A setting).

* Task reference P_a ~ Dirichlet(task_concentration·1_L).
* Each ED picks a non-IID level k from a mixture (weights ``ed_concentration_weights``) and draws
  its label distribution from Dirichlet(c_k·L·P_a): centred on the task, small c_k = very skewed.
  Its d_i samples are then drawn from that distribution (multinomial), so θ_i (26) is the EMD of
  its empirical label histogram, as an ED would compute it in Algorithm 2.
* d_i is uniform on the integers of ``data_size``; γ, β, P, R, φ are uniform on their ranges.

The default ranges (docs/pricing.md, "Scenario defaults") put one ED's fixed cost F_i = c^d + c^m
at the same order as the marginal data utility of its samples, so at default settings the ES
prices out some, but not all, of its EMD-selected EDs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tbcim.errors import ConfigError
from tbcim.lower.costs import EDArrays, MarketParams
from tbcim.lower.emd import SelectionRule, emd_from_counts
from tbcim.lower.quality import QualityParams

UNIFORM_RANGES = ("data_size", "gamma", "beta", "power", "rate", "phi")


@dataclass(frozen=True)
class ScenarioConfig:
    """Everything needed to draw and price a lower-level market (every field configurable)."""

    n_servers: int = 5
    min_eds: int = 3
    max_eds: int = 10
    n_classes: int = 10
    task_concentration: float = 2.0
    ed_concentrations: tuple[float, ...] = (0.1, 1.0, 10.0)
    ed_concentration_weights: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
    data_size: tuple[float, float] = (1000.0, 6000.0)
    gamma: tuple[float, float] = (1e-7, 5e-7)
    beta: tuple[float, float] = (0.5e-8, 1.5e-8)
    power: tuple[float, float] = (0.1, 0.5)
    rate: tuple[float, float] = (5.0, 20.0)
    phi: tuple[float, float] = (1e-4, 3e-4)
    market: MarketParams = field(default_factory=MarketParams)
    quality: QualityParams = field(default_factory=QualityParams)
    selection: SelectionRule = field(default_factory=SelectionRule)

    def __post_init__(self) -> None:
        for name in ("n_servers", "min_eds", "max_eds", "n_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"scenario.{name}", f"must be a positive integer, got {value!r}")
        if self.min_eds > self.max_eds:
            raise ConfigError("scenario.min_eds", "must not exceed scenario.max_eds")
        _positive("scenario.task_concentration", [self.task_concentration])
        _positive("scenario.ed_concentrations", self.ed_concentrations)
        _positive("scenario.ed_concentration_weights", self.ed_concentration_weights)
        if len(self.ed_concentration_weights) != len(self.ed_concentrations):
            raise ConfigError(
                "scenario.ed_concentration_weights", "needs one weight per ED concentration"
            )
        for name in UNIFORM_RANGES:
            bounds = getattr(self, name)
            if len(bounds) != 2:
                raise ConfigError(f"scenario.{name}", "must be a [low, high] pair")
            _positive(f"scenario.{name}", bounds)
            if bounds[0] > bounds[1]:
                raise ConfigError(f"scenario.{name}", "low must not exceed high")
        if self.data_size[0] < 1:
            raise ConfigError("scenario.data_size", "an ED holds at least one sample")


def _positive(name: str, values: tuple[float, ...] | list[float]) -> None:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ConfigError(name, f"must be positive and finite, got {list(values)}")


def draw_reference(rng: np.random.Generator, config: ScenarioConfig, n: int = 1) -> NDArray:
    """n task reference distributions P_a, shape (n, L)."""
    return rng.dirichlet(np.full(config.n_classes, config.task_concentration), size=n)


def draw_eds(rng: np.random.Generator, references: NDArray, config: ScenarioConfig) -> EDArrays:
    """Candidate EDs for one ES per row of ``references`` (shape (S, L)); vectorised."""
    n_rows, n_classes = references.shape
    n_cols = config.max_eds
    counts = np.asarray(rng.integers(config.min_eds, config.max_eds + 1, size=n_rows))
    present = np.arange(n_cols)[None, :] < counts[:, None]

    weights = np.asarray(config.ed_concentration_weights, dtype=np.float64)
    level = rng.choice(len(weights), size=(n_rows, n_cols), p=weights / weights.sum())
    conc = np.asarray(config.ed_concentrations)[level] * n_classes
    shape = np.maximum(conc[..., None] * references[:, None, :], 1e-300)
    gam = rng.standard_gamma(shape)
    totals = gam.sum(axis=-1, keepdims=True)
    # A Dirichlet draw with tiny concentrations can underflow to all zeros: fall back to P_a.
    probs = np.where(totals > 0, gam / np.where(totals > 0, totals, 1.0), references[:, None, :])

    low, high = config.data_size
    sizes = rng.integers(int(np.ceil(low)), int(np.floor(high)) + 1, size=(n_rows, n_cols))
    labels = rng.multinomial(sizes, probs)
    theta = emd_from_counts(labels, references[:, None, :])

    def uniform(name: str) -> NDArray:
        lo, hi = getattr(config, name)
        return rng.uniform(lo, hi, size=(n_rows, n_cols))

    return EDArrays(
        present=present,
        data_size=sizes.astype(np.float64),
        theta=theta,
        gamma=uniform("gamma"),
        beta=uniform("beta"),
        power=uniform("power"),
        rate=uniform("rate"),
        phi=uniform("phi"),
    )
