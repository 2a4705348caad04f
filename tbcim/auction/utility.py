"""The buyer's value U_d of an allocation, in numpy and (differentiable) torch.

Unit-value settings (single-S): U_d(z) = V·Σ_s z_s                                        (U1)

TBCIM settings: U_d = a5·q(D, θ̄) of (27)–(28). For a fractional allocation z the training
objective uses the relaxation (MODEL-NOTES §2)

    D(z) = Σ_s z_s·d_s,     θ̄(z) = Σ_s z_s·θ_s / Σ_s z_s   (θ̄ = 0 when Σ z = 0),           (U2)

which is exact for a 0/1 allocation (a set of winners). For a set T of winners,
U_d(T) = a5·(q(Σ_{s∈T} d_s, mean_{s∈T} θ_s) − q(∅)), with U_d(∅) = 0 ((28'), quality.py). (U3)

When the mechanism is run for real, each ES wins independently with probability z_s (M4); the
buyer then gets, in expectation, the realised value

    Ū_d(z) = Σ_T Π_{s∈T} z_s Π_{s∉T} (1 − z_s) · U_d(T),                                 (U4)

multilinear in z and equal to (U2) at 0/1 allocations. U_d is continuous at D = 0 ((28')), so
(U2) cannot be gamed by tiny allocations, but q is concave in D, so (U2) ≥ (U4) for fractional
allocations (Jensen): `evaluate` reports both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tbcim.lower.quality import QualityParams, data_utility, data_utility_torch

if TYPE_CHECKING:  # torch is imported only by the callers that train (a light CLI)
    import torch

Array = NDArray[np.float64]

#: Largest number of edge servers for which 2^S subsets are enumerated (VCG, realised value).
MAX_ENUMERATED_SERVERS = 12


def subset_masks(n_servers: int) -> Array:
    """All 2^S winner sets as 0/1 rows, shape (2^S, S); row k has bit s of k in column s."""
    codes = np.arange(2**n_servers)[:, None]
    return ((codes >> np.arange(n_servers)[None, :]) & 1).astype(np.float64)


def tbcim_value(z: Array, data_sizes: Array, emds: Array, params: QualityParams) -> Array:
    """U_d(z) of (U2) for allocations z of shape (..., S); returns shape (...)."""
    weight = z.sum(axis=-1)
    total = (z * data_sizes).sum(axis=-1)
    theta = np.divide((z * emds).sum(axis=-1), weight, out=np.zeros_like(weight), where=weight > 0)
    return data_utility(np.maximum(total, 0.0), np.maximum(theta, 0.0), params)


def tbcim_value_torch(
    z: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor, params: QualityParams
) -> torch.Tensor:
    """Differentiable U_d(z) of (U2), same numbers as :func:`tbcim_value`; shape (...,)."""
    weight = z.sum(dim=-1)
    total = (z * data_sizes).sum(dim=-1)
    theta = (z * emds).sum(dim=-1) / weight.clamp_min(1e-12)
    return data_utility_torch(total.clamp_min(0.0), theta.clamp_min(0.0), params)


def subset_values(data_sizes: Array, emds: Array, params: QualityParams) -> Array:
    """U_d(T) of (U3) for every winner set T, shape (B, 2^S); column k = row k of the masks.

    Depends on public data only, never on the bids.
    """
    masks = subset_masks(data_sizes.shape[1])
    count = masks.sum(axis=1)
    total = data_sizes @ masks.T
    theta = (emds @ masks.T) / np.maximum(count, 1.0)
    return data_utility(total, theta, params)


def unique_rows(*arrays: Array) -> tuple[list[Array], NDArray[np.int64]]:
    """Deduplicate rows shared by all ``arrays`` (B, S_i): (unique arrays, inverse index (B,))."""
    stacked = np.hstack(arrays)
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    splits = np.cumsum([a.shape[1] for a in arrays])[:-1]
    return list(np.split(unique, splits, axis=1)), inverse.reshape(-1)


def realised_tbcim_value_torch(
    z: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor, params: QualityParams
) -> torch.Tensor:
    """Differentiable (U4): exact enumeration of the 2^S winner sets; shape (B,)."""
    import torch

    n_servers = z.shape[-1]
    masks = torch.as_tensor(subset_masks(n_servers), dtype=z.dtype)  # (K, S)
    total = data_sizes @ masks.T  # (B, K)
    theta = (emds @ masks.T) / masks.sum(dim=1).clamp_min(1.0)
    values = data_utility_torch(total, theta, params)
    z = z.clamp(0.0, 1.0)[..., None, :]  # (B, 1, S)
    probability = torch.where(masks > 0, z, 1.0 - z).prod(dim=-1)  # (B, K)
    return (probability * values).sum(dim=-1)


def realised_tbcim_value(z: Array, data_sizes: Array, emds: Array, params: QualityParams) -> Array:
    """(U4): E_W[U_d(W)] when each ES wins independently with probability z_s (M4); (B,).

    Exact, by enumerating the 2^S winner sets.
    """
    masks = subset_masks(z.shape[1])
    z = np.clip(z, 0.0, 1.0)
    values = subset_values(data_sizes, emds, params)
    log_in = np.log(np.clip(z, 1e-300, None))
    log_out = np.log(np.clip(1.0 - z, 1e-300, None))
    probability = np.exp(log_in @ masks.T + log_out @ (1.0 - masks).T)
    return (probability * values).sum(axis=1)
