"""Earth Mover's Distance (26) and the client selection of Algorithm 2.

    θ_{s,n} = Σ_j |P_{s,n}(y=j) − P_a(y=j)|                                   (26)

θ lies in [0, 2]: 0 when an ED's label distribution equals the task's reference P_a, 2 when
their supports are disjoint.

Algorithm 2 as printed adds ED n to the worker set when θ_{s,n} ≥ θ̄_s, which keeps the *worst*
half of the EDs although section IV-A says a larger EMD degrades the model. We keep the EDs with
θ_{s,n} ≤ θ̄_s (MODEL-NOTES §3); the rule is configurable (:class:`SelectionRule`), and the
printed test is available as ``"paper-printed"`` for comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tbcim.errors import ConfigError

SUM_TOLERANCE = 1e-6
SELECTION_RULES = ("mean", "median", "fixed", "all", "paper-printed")


def _as_distribution(values: ArrayLike, field: str) -> NDArray[np.float64]:
    dist = np.asarray(values, dtype=np.float64)
    if dist.ndim == 0 or dist.shape[-1] == 0:
        raise ConfigError(field, "must list at least one class")
    if not np.all(np.isfinite(dist)) or np.any(dist < 0):
        raise ConfigError(field, "probabilities must be finite and non-negative")
    sums = dist.sum(axis=-1)
    if np.any(np.abs(sums - 1.0) > SUM_TOLERANCE):
        worst = float(sums.flat[np.argmax(np.abs(sums - 1.0))])
        raise ConfigError(field, f"probabilities must sum to one (found a sum of {worst:.6g})")
    return dist


def emd(
    distributions: ArrayLike,
    reference: ArrayLike,
    field: str = "label_distribution",
) -> NDArray[np.float64]:
    """θ of (26) for label distributions of shape (..., L) against a reference of shape (L,).

    The reference may also carry leading axes that broadcast (one task per ES, say).
    """
    ref = _as_distribution(reference, "reference")
    dist = _as_distribution(distributions, field)
    if dist.shape[-1] != ref.shape[-1]:
        raise ConfigError(
            "reference",
            f"has {ref.shape[-1]} classes but the ED distributions have {dist.shape[-1]}",
        )
    return np.abs(dist - ref).sum(axis=-1)


def emd_from_counts(
    counts: ArrayLike, reference: ArrayLike, field: str = "label_counts"
) -> NDArray[np.float64]:
    """θ of (26) from per-class sample counts of shape (..., L); an ED with no data is an error."""
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(field, "counts must be finite and non-negative")
    totals = arr.sum(axis=-1, keepdims=True)
    if np.any(totals <= 0):
        raise ConfigError(field, "an ED with no data has no label distribution, so no EMD")
    return emd(arr / totals, reference, field)


@dataclass(frozen=True)
class SelectionRule:
    """Which candidate EDs an ES keeps (Algorithm 2, with the corrected ≤ test).

    ``mean``:   θ ≤ scale·θ̄_s (Algorithm 2's dynamic threshold; the default, scale = 1)
    ``median``: θ ≤ scale·median_s(θ)
    ``fixed``:  θ ≤ threshold
    ``all``:    keep every candidate (no EMD selection)
    ``paper-printed``: θ ≥ θ̄_s, Algorithm 2 exactly as printed (a typo; for comparison only)
    """

    rule: str = "mean"
    scale: float = 1.0
    threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.rule not in SELECTION_RULES:
            raise ConfigError("selection.rule", f"must be one of {SELECTION_RULES}")
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ConfigError("selection.scale", f"must be positive, got {self.scale}")
        if not np.isfinite(self.threshold) or self.threshold < 0:
            raise ConfigError("selection.threshold", f"must be non-negative, got {self.threshold}")


def _at_most(left: NDArray[np.float64], right: NDArray[np.float64]) -> NDArray[np.bool_]:
    """left ≤ right up to rounding, so that equal EMDs never fall on the wrong side of a mean."""
    return left <= right + 1e-12 * (1.0 + np.abs(right))


def select(
    theta: ArrayLike, present: ArrayLike | None = None, rule: SelectionRule = SelectionRule()
) -> NDArray[np.bool_]:
    """Algorithm 2 per ES (row): a boolean mask of the selected EDs.

    ``theta`` has shape (S, N) (or (N,) for one ES); ``present`` marks the real EDs of a padded
    batch. Thresholds are computed per row over the present EDs only.
    """
    th = np.asarray(theta, dtype=np.float64)
    one_row = th.ndim == 1
    th = np.atleast_2d(th)
    mask = np.ones(th.shape, dtype=bool) if present is None else np.atleast_2d(present)
    if mask.shape != th.shape:
        raise ConfigError("present", "must have the same shape as theta")
    if np.any(mask.sum(axis=1) == 0):
        raise ConfigError("eds", "every ES needs at least one candidate ED")
    masked = np.where(mask, th, np.nan)
    if rule.rule == "mean":
        keep = _at_most(th, rule.scale * np.nanmean(masked, axis=1, keepdims=True))
    elif rule.rule == "median":
        keep = _at_most(th, rule.scale * np.nanmedian(masked, axis=1, keepdims=True))
    elif rule.rule == "fixed":
        keep = _at_most(th, np.full_like(th, rule.threshold))
    elif rule.rule == "all":
        keep = np.ones(th.shape, dtype=bool)
    else:  # "paper-printed"
        keep = _at_most(np.nanmean(masked, axis=1, keepdims=True), th)
    keep &= mask
    return keep[0] if one_row else keep
