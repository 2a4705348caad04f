"""Subopt: Algorithm 2, the one-sided-matching reverse auction, with its payment rules.

Winner determination (lines 5–14): the auctioneer's list T_A sorts all feasible triples by R
(23); the greedy takes a triple whenever its buyer and both sellers are free.

Pair payment, two rules:

* ``"critical"`` (default): the true critical value. A pair wins exactly when its preference
  exceeds θ = max(0, the largest R of a triple that conflicts with it and that the greedy takes
  when the pair is withdrawn) — the greedy is monotone in a triple's R, so this is the
  threshold. P = v_l − θ: the largest joint bid at which the pair still wins.
* ``"paper"``: (25)–(26), θ = R of the next seller pair in the buyer's own list T_1 (or the NULL
  pair, 0). This ignores whether that next pair is still available, and it is not truthful:
  see docs/matching.md for counterexamples and ``tests/matching``.

Split of P to the two sellers:

* ``"proportional"`` (line 18): p^d = (b^d / J)·P, p^u = (b^u / J)·P.
* ``"critical"``: each seller is paid its own critical bid with all other bids, its partner's
  included, held fixed — truthful for each seller's bid to its buyer, at a cost to the buyers.

The critical computations reuse the sorted list: the run without a group of triples equals the
original run up to the group's winner, so each one resumes the scan from there and stops at the
first triple that blocks the whole group.
"""

from __future__ import annotations

import numpy as np

from tbcim.errors import ConfigError
from tbcim.matching.greedy import (
    MatchState,
    SortedTriples,
    greedy_positions,
    positions_to_triples,
    scan,
    sort_triples,
)
from tbcim.matching.model import FloatArray, MatchingMarket, Outcome, make_matching
from tbcim.matching.splits import proportional_split

PAYMENT_RULES = ("critical", "paper")
SPLITS = ("proportional", "critical")


def subopt(
    market: MatchingMarket, payment: str = "critical", split: str = "proportional"
) -> Outcome:
    """Run Algorithm 2 on ``market``; see the module docstring for ``payment`` and ``split``."""
    if payment not in PAYMENT_RULES:
        raise ConfigError("payment", f"must be one of {PAYMENT_RULES}, got {payment!r}")
    if split not in SPLITS:
        raise ConfigError("split", f"must be one of {SPLITS}, got {split!r}")
    prefs = market.preferences
    triples = sort_triples(prefs)
    positions = greedy_positions(triples)
    matching = make_matching(positions_to_triples(triples, positions), market)
    order = np.argsort(triples.buyer[positions], kind="stable")  # matching rows are by buyer
    positions = [positions[i] for i in order]
    if payment == "critical":
        thresholds = np.array([_pair_threshold(triples, positions, k) for k in range(len(order))])
    else:
        thresholds = np.array([_next_in_buyer_list(triples, p) for p in positions])
    t = matching.triples
    pair_pay = market.valuations[t[:, 0]] - thresholds if t.size else np.zeros(0)
    if split == "proportional":
        data_pay, uav_pay = proportional_split(market, t, pair_pay)
    else:
        data_pay, uav_pay = _critical_split(market, prefs, triples, positions)
    return Outcome(matching, pair_pay, data_pay, uav_pay, {"thresholds": thresholds})


def _state_before(triples: SortedTriples, positions: list[int], k: int) -> MatchState:
    """The greedy's state just before it took the winner ``positions[k]``."""
    state = MatchState.empty(triples.shape)
    for p in positions:
        if p < positions[k]:
            state.take(int(triples.buyer[p]), int(triples.data[p]), int(triples.uav[p]))
    return state


def _resume_without(
    triples: SortedTriples, positions: list[int], k: int, group: tuple[int | None, ...]
) -> tuple[list[int], float]:
    """Resume the greedy after winner k with ``group`` withdrawn.

    Returns every position taken by the run without the group up to its first blocker, and the
    blocker's R (0 — the NULL pair — if nothing blocks the group).
    """
    state = _state_before(triples, positions, k)
    taken = scan(triples, state, positions[k] + 1, group)  # type: ignore[arg-type]
    before = [p for p in positions if p < positions[k]]
    blocker = 0.0
    if taken:
        last = taken[-1]
        coords = (triples.buyer[last], triples.data[last], triples.uav[last])
        if any(g is not None and coords[ax] == g for ax, g in enumerate(group)):
            blocker = max(0.0, float(triples.weight[last]))
    return before + taken, blocker


def _winner(triples: SortedTriples, p: int) -> tuple[int, int, int]:
    return int(triples.buyer[p]), int(triples.data[p]), int(triples.uav[p])


def _pair_threshold(triples: SortedTriples, positions: list[int], k: int) -> float:
    """θ of winner k: the pair wins iff its R exceeds θ, all other bids fixed."""
    _, blocker = _resume_without(triples, positions, k, _winner(triples, positions[k]))
    return blocker


def _next_in_buyer_list(triples: SortedTriples, p: int) -> float:
    """R̃ of (25): R of the first pair behind the winner in its buyer's list T_1, or 0 (NULL)."""
    later = np.flatnonzero(triples.buyer[p + 1 :] == triples.buyer[p])
    return float(triples.weight[p + 1 + later[0]]) if later.size else 0.0


def _group_margin(
    prefs: FloatArray,
    triples: SortedTriples,
    positions: list[int],
    k: int,
    free_axis: int,
) -> float:
    """How far a seller of winner k can raise its bids to the buyer and still sell to it.

    The group is the seller's triples with this buyer (the seller's coordinate and the buyer
    fixed, the partner coordinate ``free_axis`` free). Member g wins iff R_g exceeds
    θ_g = max(blocker, R of the triple taken with g's partner, 0) in the run without the group.
    """
    group: list[int | None] = list(_winner(triples, positions[k]))
    group[free_axis] = None
    taken, blocker = _resume_without(triples, positions, k, tuple(group))
    partner = (triples.buyer, triples.data, triples.uav)[free_axis]
    theta = np.full(prefs.shape[free_axis], blocker)
    for p in taken:
        theta[partner[p]] = max(theta[partner[p]], float(triples.weight[p]))
    buyer, m, n = _winner(triples, positions[k])
    members = prefs[buyer, m, :] if free_axis == 2 else prefs[buyer, :, n]
    return float(np.max(members - theta))


def _critical_split(
    market: MatchingMarket, prefs: FloatArray, triples: SortedTriples, positions: list[int]
) -> tuple[FloatArray, FloatArray]:
    """Pay each winning seller its own critical bid to its buyer (partner's bids fixed)."""
    _, M, N = market.shape
    data_pay, uav_pay = np.zeros(M), np.zeros(N)
    for k, p in enumerate(positions):
        buyer, m, n = _winner(triples, p)
        data_pay[m] = market.data_bids[buyer, m] + _group_margin(prefs, triples, positions, k, 2)
        uav_pay[n] = market.uav_bids[buyer, m, n] + _group_margin(prefs, triples, positions, k, 1)
    return data_pay, uav_pay
