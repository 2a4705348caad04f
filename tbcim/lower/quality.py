"""Data quality q(W) (27) and data utility U_d(W) (28).

    q(D, θ̄)   = α(θ̄) − a1·exp(−(a2·D)^α(θ̄)),   α(θ̄) = exp(−(θ̄/a4 + a3)²)        (27)
    U_d(D, θ̄) = a5·q(D, θ̄)                                                      (28)

D is the workers' total data size and θ̄ their mean EMD (26). The paper prints a3 inside the
exponent of (27) where its text (and (28)) use a2; we follow (28) (MODEL-NOTES §3).

Two remarks, both tested:

* With the paper's a4 = 1e5 and EMD in [0, 2], θ̄/a4 ≤ 2e-5, so the EMD barely moves q.
  Every constant is configurable for that reason.
* Taken literally, (27) gives an empty worker set q(0, 0) = exp(−a3²) − a1 ≈ 0.113 > 0:
  value from a model trained on no data. We define q = 0 when D = 0 (no workers, no model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tbcim.errors import ConfigError


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


def alpha(theta_bar: ArrayLike, params: QualityParams = QualityParams()) -> NDArray[np.float64]:
    """α(θ̄) = exp(−(θ̄/a4 + a3)²) of (27); strictly below 1 and decreasing in θ̄ ≥ 0."""
    theta = np.asarray(theta_bar, dtype=np.float64)
    return np.exp(-((theta / params.a4 + params.a3) ** 2))


def quality(
    data_size: ArrayLike, theta_bar: ArrayLike, params: QualityParams = QualityParams()
) -> NDArray[np.float64]:
    """q(D, θ̄) of (27), vectorised over broadcastable D and θ̄; q = 0 where D = 0."""
    size = np.asarray(data_size, dtype=np.float64)
    theta = np.asarray(theta_bar, dtype=np.float64)
    if np.any(size < 0) or not np.all(np.isfinite(size)):
        raise ConfigError("data_size", "must be finite and non-negative")
    if np.any(theta < 0) or not np.all(np.isfinite(theta)):
        raise ConfigError("theta_bar", "mean EMD must be finite and non-negative")
    a = alpha(theta, params)
    q = a - params.a1 * np.exp(-((params.a2 * size) ** a))
    return np.where(size > 0, q, 0.0)


def data_utility(
    data_size: ArrayLike, theta_bar: ArrayLike, params: QualityParams = QualityParams()
) -> NDArray[np.float64]:
    """U_d(D, θ̄) = a5·q(D, θ̄) of (28)."""
    return params.a5 * quality(data_size, theta_bar, params)
