"""An independent brute-force oracle for the ES's leader problem, and hypothesis strategies.

The oracle shares no code with tbcim.lower.stackelberg: it writes (27)–(36) out from the paper's
primitives, decides participation by evaluating each ED's profit (34) at its best response (no
reservation-price formula), and searches p_t on a dense grid whose every change of the worker set
is located by bisection to machine precision. Between changes the worker set is fixed, so the
supremum of π_s over each piece is its value at the piece's left end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from tbcim.lower.costs import EDArrays, MarketParams, make_ed_arrays
from tbcim.lower.quality import QualityParams


@dataclass(frozen=True)
class PlainED:
    d: float
    theta: float
    gamma: float
    beta: float
    power: float
    rate: float
    phi: float


def to_arrays(rows: list[list[PlainED]]) -> EDArrays:
    """Padded EDArrays from lists of EDs (one list per ES)."""
    width = max(len(r) for r in rows)
    present = [[n < len(r) for n in range(width)] for r in rows]

    def column(attr: str) -> list[list[float]]:
        return [[getattr(r[n], attr) if n < len(r) else 1.0 for n in range(width)] for r in rows]

    return make_ed_arrays(
        present,
        data_size=column("d"),
        theta=column("theta"),
        gamma=column("gamma"),
        beta=column("beta"),
        power=column("power"),
        rate=column("rate"),
        phi=column("phi"),
    )


def _follower(ed: PlainED, p: float, m: MarketParams) -> tuple[float, float, float]:
    """(C, V, profit) of ED at price p: C from ∂π/∂C = 0 of (35), profit from (34)."""
    theta = max(ed.theta, m.emd_floor)
    unit_value = p * ed.d / (m.kappa * theta)  # ∂V/∂C
    curvature = 2 * ed.d * m.delta_1 * m.delta_g * m.model_size * ed.beta
    c = unit_value / curvature
    v = unit_value * c
    cost = (
        ed.power * m.model_size / ed.rate * m.delta_g * ed.phi
        + ed.d * ed.gamma
        + ed.d * m.delta_1 * m.delta_g * m.model_size * ed.beta * c * c
    )
    return c, v, v - cost


def _joins(eds: list[PlainED], p: float, m: MarketParams) -> tuple[int, ...]:
    return tuple(i for i, ed in enumerate(eds) if _follower(ed, p, m)[2] >= 0)


def es_profit(
    eds: list[PlainED],
    workers: tuple[int, ...],
    p: float,
    m: MarketParams,
    q: QualityParams,
    g_e: float,
) -> float:
    """π_s of (33) with U_d of (27)–(28') written out (U_d = 0 for no workers)."""
    if not workers:
        return 0.0
    size = sum(eds[i].d for i in workers)
    theta_bar = sum(eds[i].theta for i in workers) / len(workers)
    a = math.exp(-((theta_bar / q.a4 + q.a3) ** 2))
    empty = math.exp(-(q.a3**2)) - q.a1  # q(∅) = q(0, 0)
    utility = q.a5 * (a - q.a1 * math.exp(-((q.a2 * size) ** a)) - empty)
    paid = sum(_follower(eds[i], p, m)[1] for i in workers)
    chain = m.a6 * g_e / m.gas_unit * m.gas_price * len(workers)
    return utility - paid - chain


def brute_force_leader(
    eds: list[PlainED], m: MarketParams, q: QualityParams, g_e: float, grid: int = 400
) -> float:
    """max over p_t ≥ 0 of π_s(p_t), W(p_t) = EDs whose (34) at their best response is ≥ 0."""
    p_max = 1e-12
    while len(_joins(eds, p_max, m)) < len(eds):
        p_max *= 2.0
    prices = np.unique(
        np.concatenate([np.linspace(0, p_max, grid), np.geomspace(1e-12, p_max, grid)])
    )
    sets = [_joins(eds, float(p), m) for p in prices]
    best = max(es_profit(eds, s, float(p), m, q, g_e) for p, s in zip(prices, sets, strict=True))
    for lo, hi, s_lo, s_hi in zip(prices[:-1], prices[1:], sets[:-1], sets[1:], strict=True):
        for left, workers in _changes(eds, float(lo), float(hi), s_lo, s_hi, m):
            best = max(best, es_profit(eds, workers, left, m, q, g_e))
    return best


def _changes(
    eds: list[PlainED],
    lo: float,
    hi: float,
    s_lo: tuple[int, ...],
    s_hi: tuple[int, ...],
    m: MarketParams,
) -> list[tuple[float, tuple[int, ...]]]:
    """Every (left end, worker set) where W(p) changes in (lo, hi], by recursive bisection."""
    if s_lo == s_hi:
        return []
    if hi - lo <= 4 * math.ulp(hi):
        return [(hi, s_hi)]
    mid = 0.5 * (lo + hi)
    s_mid = _joins(eds, mid, m)
    return _changes(eds, lo, mid, s_lo, s_mid, m) + _changes(eds, mid, hi, s_mid, s_hi, m)


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


plain_eds = st.builds(
    PlainED,
    d=st.integers(1, 20_000).map(float),
    theta=st.floats(0.0, 2.0),
    gamma=_log_uniform(1e-8, 1e-6),
    beta=_log_uniform(1e-9, 1e-7),
    power=_log_uniform(0.05, 1.0),
    rate=_log_uniform(1.0, 50.0),
    phi=_log_uniform(1e-5, 1e-3),
)
# Gas prices put one worker's blockchain cost between 3e-4 and 0.05, the range of one ED's
# marginal data utility, so that c^b decides the worker set often.
markets = st.builds(
    MarketParams,
    gas_price=_log_uniform(1e-3, 0.2),
    kappa=_log_uniform(1.0, 1e4),
    emd_floor=st.just(1e-3),
)
qualities = st.builds(QualityParams, a4=st.sampled_from([1.0, 1e5]), a2=_log_uniform(1e-5, 1e-3))
