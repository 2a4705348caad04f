"""The Stackelberg equilibrium (33)–(37) against independent oracles."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, minimize_scalar

from tbcim.lower.costs import ED_FIELDS, MarketParams, comm_cost, compute_cost, data_cost
from tbcim.lower.quality import QualityParams
from tbcim.lower.scenario import ScenarioConfig, draw_eds, draw_reference
from tbcim.lower.stackelberg import (
    best_response,
    ed_profit,
    payment,
    payment_coefficient,
    reservation_price,
    solve_leader,
)

from .lower_oracle import PlainED, brute_force_leader, markets, plain_eds, qualities, to_arrays

ED_SETS = st.lists(plain_eds, min_size=1, max_size=7)
G_E = 7.68e4


def _solve(eds: list[PlainED], market: MarketParams, quality: QualityParams, g_e: float = G_E):
    arrays = to_arrays([eds])
    return arrays, solve_leader(arrays, arrays.present, market, quality, g_e)


@settings(max_examples=60, deadline=None)
@given(eds=ED_SETS, market=markets, quality=qualities)
def test_exact_leader_optimum_equals_brute_force_grid(eds, market, quality) -> None:
    _, sol = _solve(eds, market, quality)
    oracle = brute_force_leader(eds, market, quality, G_E)
    assert sol.profit[0] == pytest.approx(oracle, rel=1e-6, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(eds=ED_SETS, market=markets, quality=qualities)
def test_workers_profit_nonnegative_and_priced_out_would_lose(eds, market, quality) -> None:
    arrays, sol = _solve(eds, market, quality)
    price = sol.price[:, None]
    at_price = ed_profit(price, best_response(price, arrays, market), arrays, market)[0]
    scale = (data_cost(arrays) + comm_cost(arrays, market))[0]  # F_i: rounding is relative to it
    workers = sol.workers[0]
    assert np.all(at_price[workers] >= -1e-9 * scale[workers])
    assert np.all(at_price[~workers] < 0)
    assert np.allclose(sol.ed_profit[0][workers], at_price[workers], rtol=1e-9, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    eds=ED_SETS,
    market=markets,
    quality=qualities,
    factor=st.floats(1.0, 100.0),
)
def test_raising_the_gas_price_never_adds_workers(eds, market, quality, factor) -> None:
    _, low = _solve(eds, market, quality)
    _, high = _solve(eds, replace(market, gas_price=market.gas_price * factor), quality)
    assert high.n_workers[0] <= low.n_workers[0]


@settings(max_examples=40, deadline=None)
@given(ed=plain_eds, market=markets, price=st.floats(1e-6, 1.0))
def test_best_response_maximises_ed_profit_numerically(ed, market, price) -> None:
    """(34) without its C-free terms c^m + c^d (they can dwarf the rest and drown the argmax in
    rounding), maximised by scipy; then (34) itself is no larger at scipy's point."""
    arrays = to_arrays([[ed]])
    c_star = float(best_response(price, arrays, market)[0, 0])

    def negative_variable_profit(c: float) -> float:  # V_i − c^c_i, the C-dependent part of (34)
        return -float(
            payment(price, c, arrays, market)[0, 0] - compute_cost(arrays, c, market)[0, 0]
        )

    res = minimize_scalar(
        negative_variable_profit,
        bounds=(0.0, 4 * c_star),
        method="bounded",
        options={"xatol": 1e-10 * c_star},
    )
    assert res.x == pytest.approx(c_star, rel=1e-4)
    full = ed_profit(price, np.array([c_star, res.x]), arrays, market)[0]
    assert full[0] >= full[1] - 1e-12 * abs(full[1])


@settings(max_examples=40, deadline=None)
@given(ed=plain_eds, market=markets)
def test_reservation_price_is_the_root_of_the_equilibrium_profit(ed, market) -> None:
    arrays = to_arrays([[ed]])
    r = float(reservation_price(arrays, market)[0, 0])

    def profit_at(p: float) -> float:
        return float(ed_profit(p, best_response(p, arrays, market), arrays, market)[0, 0])

    root = brentq(profit_at, 0.0, 4 * r, xtol=1e-14 * r, rtol=1e-12)
    assert root == pytest.approx(r, rel=1e-9)


def test_closed_forms_at_the_best_response() -> None:
    ed = PlainED(d=3000, theta=0.4, gamma=3e-7, beta=1e-8, power=0.3, rate=10, phi=2e-4)
    m = MarketParams()
    arrays = to_arrays([[ed]])
    w = m.delta_1 * m.delta_g * m.model_size * ed.beta
    p = 7e-4
    assert best_response(p, arrays, m)[0, 0] == pytest.approx(p / (2 * w * m.kappa * ed.theta))
    a = payment_coefficient(arrays, m)[0, 0]
    assert a == pytest.approx(ed.d / (2 * w * (m.kappa * ed.theta) ** 2))
    fixed = ed.d * ed.gamma + ed.power * m.model_size / ed.rate * m.delta_g * ed.phi
    c = best_response(p, arrays, m)
    assert ed_profit(p, c, arrays, m)[0, 0] == pytest.approx(a * p**2 / 2 - fixed)
    assert reservation_price(arrays, m)[0, 0] == pytest.approx(
        2 * m.kappa * ed.theta * math.sqrt(w * fixed / ed.d)
    )


def test_printed_leader_problem_37_is_maximised_at_zero_price() -> None:
    """Without participation, (37) only falls in p_t, and at p_t = 0 every ED loses money."""
    eds = [
        PlainED(
            d=2000 + 500 * i,
            theta=0.2 + 0.1 * i,
            gamma=3e-7,
            beta=1e-8,
            power=0.3,
            rate=10,
            phi=2e-4,
        )
        for i in range(5)
    ]
    m = MarketParams()
    arrays = to_arrays([eds])
    prices = np.linspace(0.0, 5e-3, 501)
    coeff = payment_coefficient(arrays, m)[0].sum()
    printed_37 = -(prices**2) * coeff  # + U(W_s) − c^b, both constant in p_t
    assert np.argmax(printed_37) == 0
    assert np.all(ed_profit(0.0, best_response(0.0, arrays, m), arrays, m)[0] < 0)
    sol = solve_leader(arrays, arrays.present, m, QualityParams())
    assert sol.price[0] > 0 and sol.n_workers[0] > 0


@settings(max_examples=20, deadline=None)
@given(servers=st.lists(ED_SETS, min_size=2, max_size=4), market=markets, quality=qualities)
def test_batched_solution_equals_one_es_at_a_time(servers, market, quality) -> None:
    arrays = to_arrays(servers)
    batch = solve_leader(arrays, arrays.present, market, quality, G_E)
    for s, eds in enumerate(servers):
        _, one = _solve(eds, market, quality)
        assert batch.price[s] == one.price[0]
        assert batch.profit[s] == pytest.approx(one.profit[0], rel=1e-12, abs=1e-15)
        assert np.array_equal(batch.workers[s, : len(eds)], one.workers[0])


def test_equal_reservation_prices_join_together() -> None:
    twin = PlainED(d=3000, theta=0.3, gamma=3e-7, beta=1e-8, power=0.3, rate=10, phi=2e-4)
    _, sol = _solve([twin, twin, twin], MarketParams(), QualityParams())
    assert sol.n_workers[0] in (0, 3)


def test_empty_worker_set_has_zero_profit_and_price() -> None:
    greedy = PlainED(d=100, theta=1.9, gamma=1e-5, beta=1e-7, power=1.0, rate=1.0, phi=1e-2)
    _, sol = _solve([greedy], MarketParams(gas_price=0.2), QualityParams())
    assert sol.n_workers[0] == 0 and sol.price[0] == 0.0 and sol.profit[0] == 0.0
    assert sol.cost[0] == 0.0


def test_default_scenarios_match_brute_force() -> None:
    """The generator's default markets, where c^b and the ED costs are both pivotal."""
    config = ScenarioConfig()
    rng = np.random.default_rng(11)
    arrays = draw_eds(rng, draw_reference(rng, config, 25), config)
    for gas_price in (1e-2, 4e-2):
        market = replace(config.market, gas_price=gas_price)
        sol = solve_leader(arrays, arrays.present, market, config.quality)
        for s in range(arrays.shape[0]):
            eds = [
                PlainED(*(float(getattr(arrays, f)[s, n]) for f in ED_FIELDS))
                for n in np.flatnonzero(arrays.present[s])
            ]
            oracle = brute_force_leader(eds, market, config.quality, market.g_e, grid=200)
            assert sol.profit[s] == pytest.approx(oracle, rel=1e-6, abs=1e-12)
