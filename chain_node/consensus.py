"""Block-producer election by the paper's proof-of-stake rule (section II-A).

Each ES's stake is its revenue share s_i = revenue_i / Σ revenue. For every block, draw
r ~ U[0, 1]; among the ESs whose share exceeds r, pick one uniformly at random (redraw r when
no share exceeds it). Higher-revenue ESs are therefore elected more often: ES i wins with

    P(i) = (1 / max_j s_j) · ∫_0^{s_i} dr / |{j : s_j > r}|,

which :func:`election_probabilities` evaluates exactly (piecewise constant in r).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from tbcim.errors import ConfigError


def revenue_shares(revenues: Sequence[float]) -> np.ndarray:
    """Normalise non-negative revenues to shares; at least one must be positive."""
    values = np.asarray(revenues, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ConfigError("revenues", "need a non-empty list of ES revenues")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ConfigError("revenues", "revenues must be finite and non-negative")
    total = values.sum()
    if total <= 0:
        raise ConfigError("revenues", "at least one ES needs a positive revenue")
    return values / total


class ProofOfStake:
    """Elects block producers among ``len(revenues)`` ESs with the paper's rule."""

    def __init__(self, revenues: Sequence[float], seed: int = 0) -> None:
        self.shares = revenue_shares(revenues)
        self._rng = np.random.default_rng(seed)

    def update_revenues(self, revenues: Sequence[float]) -> None:
        """Stakes follow revenue: call after each market round with the new revenues."""
        shares = revenue_shares(revenues)
        if shares.size != self.shares.size:
            raise ConfigError("revenues", f"expected {self.shares.size} ESs, got {shares.size}")
        self.shares = shares

    def elect(self) -> int:
        """Index of the ES that produces the next block."""
        while True:
            r = self._rng.random()
            eligible = np.flatnonzero(self.shares > r)
            if eligible.size:
                return int(self._rng.choice(eligible))


def election_probabilities(shares: Sequence[float]) -> np.ndarray:
    """Exact probability that each ES is elected under :class:`ProofOfStake`'s rule."""
    s = revenue_shares(shares)
    levels = np.concatenate(([0.0], np.unique(s)))
    probs = np.zeros_like(s)
    for low, high in itertools.pairwise(levels):
        active = s >= high  # shares exceeding every r in (low, high)
        probs[active] += (high - low) / active.sum()
    return probs / s.max()
