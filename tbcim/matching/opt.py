"""Opt: exact winner determination (10) as a MILP, with VCG (Clarke) payments (Algorithm 1).

max Σ R_{l,m,n}·x_{l,m,n}  s.t.  Σ_{m,n} x ≤ 1 ∀l,  Σ_{l,n} x ≤ 1 ∀m,  Σ_{l,m} x ≤ 1 ∀n,
x ∈ {0,1}, with a variable only for the feasible triples (R ≥ 0). Solved by HiGHS through
``scipy.optimize.milp`` with a zero relative gap. The objective is recomputed exactly from the
chosen triples, and Clarke differences are rounded to 1e-9 and clipped at 0, so solver noise
cannot produce negative margins.

Payments. The paper's agents in (Theorem 2) are seller pairs: the pair (m, n) that serves buyer l
is paid P = J_{l,m,n} + F* − F*_{−(m,n)}, where F*_{−(m,n)} is the optimum with every triple of
that pair removed (the data-seller m and UAV-seller n stay available to other partners). That is
the VCG payment of the pair as one agent: truthful for the pair's whole joint-bid vector.

Split to the two sellers:

* ``"proportional"`` (the paper's line 18).
* ``"vcg_seller"``: each seller gets its own Clarke payment, p_m = b^d + F* − F*_{−m} with every
  triple of seller m removed (and the same for the UAV-seller). This is VCG with the individual
  sellers as agents, truthful for each seller alone; as F*_{−m} ≤ F*_{−(m,n)} it pays each seller
  at least the pair's margin, so the pair's total can be up to twice the pair margin above J.
"""

from __future__ import annotations

import numpy as np

from tbcim.errors import ConfigError, TbcimError
from tbcim.matching.model import FloatArray, IntArray, MatchingMarket, Outcome, make_matching
from tbcim.matching.splits import proportional_split

SPLITS = ("proportional", "vcg_seller")
_DIGITS = 9


def solve_assignment(preferences: FloatArray, removed: np.ndarray | None = None) -> IntArray:
    """Optimal triples (rows (l, m, n)) of the 3-D assignment over R ≥ 0, minus ``removed``."""
    L, M, N = preferences.shape
    keep = preferences >= 0
    if removed is not None:
        keep &= ~removed
    flat = np.flatnonzero(keep)
    if flat.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    from scipy.optimize import Bounds, LinearConstraint, milp  # only here: a light CLI
    from scipy.sparse import csr_array

    buyer, m, n = np.unravel_index(flat, preferences.shape)
    cols = np.arange(flat.size)
    rows = np.concatenate([buyer, L + m, L + M + n])
    matrix = csr_array(
        (np.ones(3 * flat.size), (rows, np.tile(cols, 3))), shape=(L + M + N, flat.size)
    )
    result = milp(
        c=-preferences.ravel()[flat],
        constraints=LinearConstraint(matrix, -np.inf, 1.0),
        integrality=np.ones(flat.size),
        bounds=Bounds(0.0, 1.0),
        options={"mip_rel_gap": 0.0},
    )
    if result.x is None:  # pragma: no cover - x = 0 is always feasible
        raise TbcimError(f"HiGHS failed on the assignment MILP: {result.message}")
    chosen = result.x > 0.5
    return np.stack([buyer[chosen], m[chosen], n[chosen]], axis=1).astype(np.int64)


def _value(preferences: FloatArray, triples: IntArray) -> float:
    return float(preferences[triples[:, 0], triples[:, 1], triples[:, 2]].sum())


def _clarke_margin(preferences: FloatArray, best: float, removed: np.ndarray) -> float:
    """F* − F*_{−agent}, rounded against solver noise and clipped at 0."""
    without = _value(preferences, solve_assignment(preferences, removed))
    return max(0.0, round(best - without, _DIGITS))


def opt(market: MatchingMarket, split: str = "proportional") -> Outcome:
    """Optimal matching with pair-level VCG payments, split as ``split`` says."""
    if split not in SPLITS:
        raise ConfigError("split", f"must be one of {SPLITS}, got {split!r}")
    prefs = market.preferences
    matching = make_matching(solve_assignment(prefs), market)
    best = matching.revenue
    L, M, N = market.shape
    data_ix, uav_ix = np.arange(M)[None, :, None], np.arange(N)[None, None, :]
    t = matching.triples
    joint = market.joint_bids
    shape = (L, M, N)
    margins = np.array(
        [
            _clarke_margin(prefs, best, np.broadcast_to((data_ix == m) & (uav_ix == n), shape))
            for _, m, n in t.tolist()
        ]
    )
    pair_pay = joint[t[:, 0], t[:, 1], t[:, 2]] + margins if t.size else np.zeros(0)
    if split == "proportional":
        data_pay, uav_pay = proportional_split(market, t, pair_pay)
    else:
        data_pay, uav_pay = np.zeros(M), np.zeros(N)
        for buyer, m, n in t.tolist():
            no_m = np.broadcast_to(data_ix == m, shape)
            no_n = np.broadcast_to(uav_ix == n, shape)
            data_pay[m] = market.data_bids[buyer, m] + _clarke_margin(prefs, best, no_m)
            uav_pay[n] = market.uav_bids[buyer, m, n] + _clarke_margin(prefs, best, no_n)
    return Outcome(matching, pair_pay, data_pay, uav_pay, {"pair_margins": margins})
