"""Scenario generation, whole priced markets (tbcim.lower.pricing), and server_types."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.lower.plot import profit_curve
from tbcim.lower.pricing import price_market, server_types
from tbcim.lower.scenario import ScenarioConfig, draw_eds, draw_reference

CONFIG = ScenarioConfig()


def _market(seed: int, n: int, config: ScenarioConfig = CONFIG):
    rng = np.random.default_rng(seed)
    return price_market(draw_eds(rng, draw_reference(rng, config, n), config), config)


def test_generator_follows_the_papers_setting() -> None:
    rng = np.random.default_rng(0)
    eds = draw_eds(rng, draw_reference(rng, CONFIG, 400), CONFIG)
    per_es = eds.present.sum(axis=1)
    assert per_es.min() == 3 and per_es.max() == 10
    real = eds.present
    assert np.all((eds.data_size[real] >= 1000) & (eds.data_size[real] <= 6000))
    assert np.all((eds.theta[real] >= 0) & (eds.theta[real] <= 2))
    lo, hi = CONFIG.gamma
    assert np.all((eds.gamma[real] >= lo) & (eds.gamma[real] <= hi))
    # The Dirichlet mixture spreads θ: skewed (c = 0.1) and near-IID (c = 10) EDs both occur.
    assert np.quantile(eds.theta[real], 0.1) < 0.25 and np.quantile(eds.theta[real], 0.9) > 1.0


def test_defaults_price_out_some_but_not_all_selected_eds() -> None:
    market = _market(1, 200)
    selected, workers = market.selected.sum(), market.solution.workers.sum()
    assert 0 < workers < selected
    assert 0.1 < 1 - workers / selected < 0.6
    assert np.all(market.solution.workers <= market.selected)


def test_higher_gas_price_shrinks_the_default_market() -> None:
    counts = []
    for gas_price in (1e-3, 1e-2, 2e-2, 4e-2, 8e-2):
        config = replace(CONFIG, market=replace(CONFIG.market, gas_price=gas_price))
        counts.append(int(_market(2, 300, config).solution.workers.sum()))
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


def test_server_types_shapes_consistency_and_determinism() -> None:
    types = server_types(np.random.default_rng(5), 500)
    again = server_types(np.random.default_rng(5), 500)
    assert set(types) == {"cost", "data_size", "emd", "n_workers"}
    for key, value in types.items():
        assert value.shape == (500,)
        assert np.array_equal(value, again[key])
    assert np.all(types["n_workers"] >= 1) and np.all(types["n_workers"] <= 10)
    assert np.all(types["cost"] > 0) and np.all(types["data_size"] >= 1000)
    assert np.all((types["emd"] >= 0) & (types["emd"] <= 2))
    assert not np.array_equal(types["cost"], server_types(np.random.default_rng(6), 500)["cost"])


def test_server_types_cost_is_payments_plus_blockchain_cost() -> None:
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    types = server_types(rng, 50, g_e=5e4)
    rng.bit_generator.state = state  # replay the same draws (the first round hires in most ESs)
    sol = price_market(draw_eds(rng, draw_reference(rng, CONFIG, 50), CONFIG), CONFIG, 5e4).solution
    hired = np.flatnonzero(sol.n_workers > 0)
    k = hired.size
    expected = sol.payments.sum(axis=1) + CONFIG.market.a6 * 5.0 * CONFIG.market.gas_price * (
        sol.n_workers
    )
    assert np.allclose(types["cost"][:k], expected[hired])
    assert np.array_equal(types["n_workers"][:k], sol.n_workers[hired])


def test_server_types_redraws_ess_that_hire_nobody() -> None:
    costly = replace(CONFIG, market=replace(CONFIG.market, gas_price=0.08))
    one_round = _market(3, 400, costly).solution
    assert np.mean(one_round.n_workers == 0) > 0.05  # the redraw matters at this gas price
    types = server_types(np.random.default_rng(3), 400, costly)
    assert np.all(types["n_workers"] >= 1)


def test_server_types_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"^n:"):
        server_types(np.random.default_rng(0), 0)
    with pytest.raises(ConfigError, match="g_e"):
        server_types(np.random.default_rng(0), 3, g_e=-1.0)
    hopeless = replace(CONFIG, gamma=(1.0, 2.0))
    with pytest.raises(ConfigError, match="degenerate"):
        server_types(np.random.default_rng(0), 2, hopeless)


def test_profit_curve_peaks_at_the_exact_optimum() -> None:
    market = _market(4, 6)
    sol = market.solution
    grid = np.linspace(0.0, 2 * float(sol.price.max()), 2001)
    curve = profit_curve(market, CONFIG, CONFIG.market.g_e, np.concatenate([grid, sol.price]))
    assert np.all(curve[:, :-6].max(axis=1) <= sol.profit + 1e-12)
    assert np.allclose(np.diag(curve[:, -6:]), sol.profit)


def test_the_old_module_name_still_works_with_a_deprecation_warning() -> None:
    import importlib
    import sys

    sys.modules.pop("tbcim.lower.market", None)
    with pytest.warns(DeprecationWarning, match="renamed tbcim.lower.pricing"):
        old = importlib.import_module("tbcim.lower.market")
    assert old.price_market is price_market and old.server_types is server_types
