"""HVPM, LCPM, RSBM and FOGA: constraints, determinism and their relation to Opt."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tbcim.matching.foga import FogaParams, foga
from tbcim.matching.methods import METHODS, run_method
from tbcim.matching.model import MatchingMarket
from tbcim.matching.opt import opt

from .oracles import brute_force_best, plain_greedy, random_market
from .test_subopt import assert_valid_matching


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_every_method_respects_the_constraints_and_never_beats_opt(seed: int) -> None:
    market = random_market(seed)
    best = brute_force_best(market.preferences)
    for method in METHODS:
        matching = run_method(method, market, np.random.default_rng(seed))
        assert_valid_matching(market, matching.triples)
        assert matching.revenue <= best + 1e-9


def test_lcpm_is_the_greedy_on_joint_bids() -> None:
    market = random_market(11, max_size=4)
    lcpm = run_method("LCPM", market, np.random.default_rng(0))
    # with equal valuations the greedy on R and on −J coincide
    flat = MatchingMarket(np.full(market.shape[0], 10.0), market.data_bids, market.uav_bids)
    taken = run_method("LCPM", flat, np.random.default_rng(0)).triples.tolist()
    assert {tuple(t) for t in taken} == plain_greedy(flat.preferences)
    assert lcpm.revenue <= opt(market).matching.revenue + 1e-9


def test_hvpm_serves_the_highest_valuations_first() -> None:
    market = MatchingMarket(np.array([1.0, 50.0, 20.0]), np.ones((3, 1)), np.ones((3, 1, 1)))
    matching = run_method("HVPM", market, np.random.default_rng(0))
    assert matching.pair_of(1) == (0, 0) and matching.unmatched_buyers == [0, 2]


@pytest.mark.parametrize("method", METHODS)
def test_methods_are_deterministic_by_seed(method: str) -> None:
    market = random_market(21, max_size=4)
    a = run_method(method, market, np.random.default_rng(5))
    b = run_method(method, market, np.random.default_rng(5))
    assert np.array_equal(a.triples, b.triples)


def test_foga_finds_the_optimum_on_small_markets() -> None:
    for seed in range(5):
        market = random_market(seed)
        found = foga(market, np.random.default_rng(seed), FogaParams(population=10, generations=10))
        assert found.revenue == pytest.approx(brute_force_best(market.preferences))
