"""Opt: exact winner determination (10) as a MILP, with VCG (Clarke) payments (Algorithm 1).

max Σ R_{l,m,n}·x_{l,m,n}  s.t.  Σ_{m,n} x ≤ 1 ∀l,  Σ_{l,n} x ≤ 1 ∀m,  Σ_{l,m} x ≤ 1 ∀n,
x ∈ {0,1}, with a variable only for the feasible triples (R ≥ 0, R from (22)). The objective is
the buyers' total revenue F (9); the chosen triples' F is recomputed exactly from R, and Clarke
differences F* − F*_{−agent} are clipped at 0.

Exactness at near-ties. HiGHS (called directly through ``highspy``) stops once the incumbent
is within its MIP gaps of the bound, it prunes a node unless the node's bound beats the
incumbent by more than ``mip_feasibility_tolerance``, and it judges LP optimality to
``dual_feasibility_tolerance``. The absolute gap and both tolerances are absolute on the
objective (1e-6, 1e-6 and 1e-7 by default), so with the defaults (and with
``scipy.optimize.milp``, which exposes only the relative gap) two matchings whose F (9) differ
by less than about 1e-6 look tied and the worse one can be returned (issue 11: 178 of 200
near-tie markets, short by up to 2.1e-7). So we (a) set both MIP gaps to 0, (b) set the two
feasibility tolerances and the MIP one to HiGHS's smallest allowed value, 1e-10, and (c) scale
the objective of (10) by K = 1e6 / max R, which leaves its argmax unchanged (K > 0). A tolerance
of 1e-10 on the scaled objective is 1e-16·max R on F, below one unit in the last place of the
largest R, so any smaller difference between two matchings' F is below the resolution of F
itself. Neither step alone sufficed on the near-tie markets of the test: zero gaps with the
default tolerances still returned worse matchings when the best ones were about 1e-8 apart, and
1e-10 tolerances without the scaling did when they were about 1e-9 apart.
``tests/matching/test_opt_near_ties.py`` checks F* and the payments against enumeration.

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

import functools
import os
import sys
from types import ModuleType

import numpy as np

from tbcim.errors import ConfigError, TbcimError
from tbcim.matching.model import FloatArray, IntArray, MatchingMarket, Outcome, make_matching
from tbcim.matching.splits import proportional_split

SPLITS = ("proportional", "vcg_seller")


#: HiGHS options for an exact optimum of (10); see the module docstring.
_HIGHS_OPTIONS: dict[str, float | bool] = {
    "output_flag": False,
    "mip_abs_gap": 0.0,
    "mip_rel_gap": 0.0,
    "mip_feasibility_tolerance": 1e-10,
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
}
#: The largest objective coefficient after scaling: K = _SCALED_MAX / max R (module docstring).
_SCALED_MAX = 1e6


@functools.cache
def _highspy() -> ModuleType:
    """``highspy``, imported on first use (a light CLI), with its one-time banner discarded.

    HiGHS prints a two-line banner on the C-level stdout when a process builds its first solver,
    whatever ``output_flag`` says; it would land in the middle of the CLI's tables.
    """
    import highspy

    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout (fd 1 closed): nothing to keep clean
        highspy.Highs()
        return highspy
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return highspy


def solve_assignment(preferences: FloatArray, removed: np.ndarray | None = None) -> IntArray:
    """Optimal triples (rows (l, m, n)) of the 3-D assignment over R ≥ 0, minus ``removed``."""
    L, M, N = preferences.shape
    keep = preferences >= 0
    if removed is not None:
        keep &= ~removed
    flat = np.flatnonzero(keep)
    if flat.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    highspy = _highspy()
    buyer, m, n = np.unravel_index(flat, preferences.shape)
    values = preferences.ravel()[flat]
    top = float(values.max())
    count = flat.size
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = count, L + M + N
    lp.col_cost_ = -(values / top if top > 0 else values) * _SCALED_MAX  # HiGHS minimises
    lp.col_lower_, lp.col_upper_ = np.zeros(count), np.ones(count)
    lp.row_lower_, lp.row_upper_ = np.full(L + M + N, -highspy.kHighsInf), np.ones(L + M + N)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise  # column j: rows l, L + m, L + M + n
    lp.a_matrix_.start_ = np.arange(0, 3 * count + 1, 3)
    lp.a_matrix_.index_ = np.stack([buyer, L + m, L + M + n], axis=1).ravel()
    lp.a_matrix_.value_ = np.ones(3 * count)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * count
    solver = highspy.Highs()
    for option, value in _HIGHS_OPTIONS.items():
        solver.setOptionValue(option, value)
    solver.passModel(lp)
    solver.run()
    status = solver.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:  # pragma: no cover - x = 0 is feasible
        raise TbcimError(
            f"HiGHS failed on the assignment MILP: {solver.modelStatusToString(status)}"
        )
    chosen = np.asarray(solver.getSolution().col_value) > 0.5
    return np.stack([buyer[chosen], m[chosen], n[chosen]], axis=1).astype(np.int64)


def _value(preferences: FloatArray, triples: IntArray) -> float:
    return float(preferences[triples[:, 0], triples[:, 1], triples[:, 2]].sum())


def _clarke_margin(preferences: FloatArray, best: float, removed: np.ndarray) -> float:
    """F* − F*_{−agent}, clipped at 0 (an exact tie may differ by float rounding of the sums)."""
    without = _value(preferences, solve_assignment(preferences, removed))
    return max(0.0, best - without)


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
