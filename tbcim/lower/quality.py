"""Data quality q(W) (27) and data utility U_d(W) (28).

    q(D, θ̄)   = α(θ̄) − a1·exp(−(a2·D)^α(θ̄)),   α(θ̄) = exp(−(θ̄/a4 + a3)²)        (27)
    U_d(D, θ̄) = a5·(q(D, θ̄) − q(∅)),           q(∅) = q(0, 0) = e^{−a3²} − a1      (28')

D is the workers' total data size and θ̄ their mean EMD (26), with θ̄(∅) = 0 as in the paper.
The paper prints a3 inside the exponent of (27) where its text and (28) use a2; we follow (28)
(MODEL-NOTES §3).

Why (28') subtracts q(∅): read literally, (27) gives a model trained on no data the quality
q(0, 0) = e^{−a3²} − a1 ≈ 0.113, about chance accuracy on a 10-class task. The buyer (and an ES
that hires nobody) has that model for free, so the value of a worker set is the quality it adds:
U_d(∅) = 0, and U_d is continuous in D at 0. (Defining q = 0 at D = 0 instead makes U_d jump by
a5·0.113 at the first sample, which a relaxed allocation D = Σ z_s·d_s exploits: z = ε for every
ES would be worth 0.07 for nothing.) Subtracting a constant changes no choice between non-empty
worker sets; it only makes "hire nobody" the honest zero.

With the paper's a4 = 1e5 and EMD in [0, 2], θ̄/a4 ≤ 2e-5, so the EMD barely moves q. Every
constant is configurable for that reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tbcim.errors import ConfigError

if TYPE_CHECKING:  # torch is imported only by the callers that train
    import torch


@dataclass(frozen=True)
class QualityParams:
    """Curve-fitting constants of (27)–(28); defaults are the paper's (section V-A)."""

    a1: float = 0.87
    a2: float = 1e-5
    a3: float = 0.13
    a4: float = 1e5
    a5: float = 0.64

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"quality.{name}", f"must be positive and finite, got {value}")

    @property
    def empty_quality(self) -> float:
        """q(∅) = q(0, 0) = e^{−a3²} − a1: the free, chance-level model."""
        return math.exp(-(self.a3**2)) - self.a1


def alpha(theta_bar: ArrayLike, params: QualityParams = QualityParams()) -> NDArray[np.float64]:
    """α(θ̄) = exp(−(θ̄/a4 + a3)²) of (27); strictly below 1 and decreasing in θ̄ ≥ 0."""
    theta = np.asarray(theta_bar, dtype=np.float64)
    return np.exp(-((theta / params.a4 + params.a3) ** 2))


def quality(
    data_size: ArrayLike, theta_bar: ArrayLike, params: QualityParams = QualityParams()
) -> NDArray[np.float64]:
    """q(D, θ̄) of (27), vectorised over broadcastable D and θ̄."""
    size = np.asarray(data_size, dtype=np.float64)
    theta = np.asarray(theta_bar, dtype=np.float64)
    if np.any(size < 0) or not np.all(np.isfinite(size)):
        raise ConfigError("data_size", "must be finite and non-negative")
    if np.any(theta < 0) or not np.all(np.isfinite(theta)):
        raise ConfigError("theta_bar", "mean EMD must be finite and non-negative")
    a = alpha(theta, params)
    return a - params.a1 * np.exp(-((params.a2 * size) ** a))


def data_utility(
    data_size: ArrayLike, theta_bar: ArrayLike, params: QualityParams = QualityParams()
) -> NDArray[np.float64]:
    """U_d(D, θ̄) = a5·(q(D, θ̄) − q(∅)) of (28'); zero for the empty worker set."""
    return params.a5 * (quality(data_size, theta_bar, params) - params.empty_quality)


def data_utility_torch(
    data_size: torch.Tensor, theta_bar: torch.Tensor, params: QualityParams = QualityParams()
) -> torch.Tensor:
    """Differentiable :func:`data_utility` (same numbers) for D ≥ 0.

    (a2·D)^α has an infinite derivative at D = 0; the power is taken on a safe D there and
    replaced by its value 0, so gradients stay finite.
    """
    import torch

    a = torch.exp(-((theta_bar / params.a4 + params.a3) ** 2))
    positive = data_size > 0
    safe = torch.where(positive, data_size, torch.ones_like(data_size))
    powered = torch.where(positive, (params.a2 * safe) ** a, torch.zeros_like(safe))
    return params.a5 * (a - params.a1 * torch.exp(-powered) - params.empty_quality)
