"""ED costs (29)–(31), the ES's blockchain cost (32), and the arrays that describe the EDs.

    c^d_i = d_i·γ_i                                   data cost             (29)
    c^c_i = d_i·δ1·δg·M·β_i·C_i²                      computation cost      (30)
    c^m_i = P_i·(M/R_i)·δg·φ_i                        communication cost    (31)
    c^b_s = a6·(g_e/gas_unit)·p_g·|W_s|               blockchain cost       (32)

Normalisation of (32). Taken literally, the paper's constants (a6 = 3.48e-2, g_e = 7.68e4) give
a6·g_e·p_g = 26.7 money units per worker at its lowest gas price p_g = 1e-2, forty times the whole
data utility U_d ≤ a5 = 0.64, so no ES would ever hire anyone. We count gas in units of
``gas_unit`` = 10⁴ gas (:class:`MarketParams`); the blockchain cost per worker is then
2.7e-3, 5.3e-3 and 1.07e-2 (0.42 %, 0.84 % and 1.7 % of a5) at the paper's gas prices 1e-2,
2e-2 and 4e-2: the order of one ED's marginal data utility, so the gas price moves the worker
set (Fig. 8).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tbcim.errors import ConfigError

Array = NDArray[np.float64]


@dataclass(frozen=True)
class MarketParams:
    """Constants of (29)–(37); paper values where the paper gives them (section V-A).

    ``kappa`` (κ of (33)) is not given in the paper: it only sets the unit of the price p_t.
    ``emd_floor`` bounds θ away from 0 where (33) and (36) divide by it: an ED whose labels
    match the task exactly would otherwise have an infinite utility per unit of compute.
    """

    delta_1: float = 5.0
    delta_g: float = 100.0
    model_size: float = 0.5
    kappa: float = 1e3
    a6: float = 3.48e-2
    gas_price: float = 2e-2
    gas_unit: float = 1e4
    g_e: float = 7.68e4
    emd_floor: float = 1e-3

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"market.{name}", f"must be positive and finite, got {value}")


ED_FIELDS = ("data_size", "theta", "gamma", "beta", "power", "rate", "phi")


@dataclass(frozen=True)
class EDArrays:
    """The candidate EDs of S ESs, padded to shape (S, N); ``present`` marks real EDs.

    data_size d (samples), theta θ (26), gamma γ (money/sample), beta β (unit compute cost),
    power P (W), rate R (model units/s), phi φ (money/J). Padding entries are ignored.
    """

    present: NDArray[np.bool_]
    data_size: Array
    theta: Array
    gamma: Array
    beta: Array
    power: Array
    rate: Array
    phi: Array

    @property
    def shape(self) -> tuple[int, int]:
        return self.present.shape  # type: ignore[return-value]


def make_ed_arrays(present: ArrayLike, **columns: ArrayLike) -> EDArrays:
    """Build and validate :class:`EDArrays`; every bad value names its field."""
    mask = np.atleast_2d(np.asarray(present, dtype=bool))
    if mask.size == 0 or np.any(mask.sum(axis=1) == 0):
        raise ConfigError("eds", "every ES needs a non-empty set of candidate EDs")
    if set(columns) != set(ED_FIELDS):
        raise ConfigError("eds", f"needs exactly the columns {ED_FIELDS}")
    arrays: dict[str, Array] = {}
    for name in ED_FIELDS:
        col = np.atleast_2d(np.asarray(columns[name], dtype=np.float64))
        if col.shape != mask.shape:
            raise ConfigError(name, f"shape {col.shape} does not match the ED set {mask.shape}")
        real = col[mask]
        if not np.all(np.isfinite(real)):
            raise ConfigError(name, "must be finite")
        if name == "theta":
            if np.any(real < 0) or np.any(real > 2 + 1e-9):
                raise ConfigError(name, "an EMD (26) lies in [0, 2]")
        elif np.any(real <= 0):
            what = "data sizes" if name == "data_size" else "cost parameters"
            raise ConfigError(name, f"{what} must be positive")
        arrays[name] = np.where(mask, col, 1.0)  # benign padding
    return EDArrays(present=mask, **arrays)


def data_cost(eds: EDArrays) -> Array:
    """c^d = d·γ (29)."""
    return eds.data_size * eds.gamma


def compute_cost(eds: EDArrays, compute: ArrayLike, market: MarketParams) -> Array:
    """c^c = d·δ1·δg·M·β·C² (30) for computing resources C."""
    c = np.asarray(compute, dtype=np.float64)
    return eds.data_size * compute_weight(eds, market) * c**2


def compute_weight(eds: EDArrays, market: MarketParams) -> Array:
    """δ1·δg·M·β, the per-sample coefficient of C² in (30)."""
    return market.delta_1 * market.delta_g * market.model_size * eds.beta


def comm_cost(eds: EDArrays, market: MarketParams) -> Array:
    """c^m = P·(M/R)·δg·φ (31)."""
    return eds.power * (market.model_size / eds.rate) * market.delta_g * eds.phi


def blockchain_cost(n_workers: ArrayLike, market: MarketParams, g_e: float | None = None) -> Array:
    """c^b = a6·(g_e/gas_unit)·p_g·|W| (32); ``g_e`` defaults to ``market.g_e``."""
    gas = market.g_e if g_e is None else g_e
    return market.a6 * (gas / market.gas_unit) * market.gas_price * np.asarray(n_workers, float)
