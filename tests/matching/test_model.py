"""MatchingMarket validation, the scenario generator and every input error path."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.matching.foga import FogaParams
from tbcim.matching.methods import run_method
from tbcim.matching.model import MatchingMarket, SellerRef
from tbcim.matching.opt import opt
from tbcim.matching.scenario import ScenarioConfig, generate
from tbcim.matching.subopt import subopt

GOOD = {
    "valuations": np.array([10.0, 9.0]),
    "data_bids": np.ones((2, 3)),
    "uav_bids": np.ones((2, 3, 4)),
}


def test_preferences_are_valuation_minus_joint_bid() -> None:
    market = MatchingMarket(**GOOD)
    assert market.shape == (2, 3, 4)
    assert market.joint_bids[1, 2, 3] == 2.0
    assert market.preferences[0, 0, 0] == 8.0


@pytest.mark.parametrize("field", ["valuations", "data_bids", "uav_bids"])
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_negative_or_non_finite_input_names_the_field(field: str, bad: float) -> None:
    values = {k: v.copy() for k, v in GOOD.items()}
    values[field].flat[0] = bad
    with pytest.raises(ConfigError, match=field):
        MatchingMarket(**values)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("buyers", {"valuations": np.zeros(0), "data_bids": np.zeros((0, 3))}),
        ("data_sellers", {"data_bids": np.zeros((2, 0)), "uav_bids": np.zeros((2, 0, 4))}),
        ("uav_sellers", {"uav_bids": np.zeros((2, 3, 0))}),
        ("data_bids", {"data_bids": np.ones((3, 3))}),
        ("uav_bids", {"uav_bids": np.ones((2, 2, 4))}),
        ("uav_bids", {"uav_bids": np.ones((2, 3))}),
    ],
)
def test_empty_sets_and_inconsistent_shapes_name_the_field(field: str, change: dict) -> None:
    with pytest.raises(ConfigError, match=field):
        MatchingMarket(**{**GOOD, **change})


def test_generated_market_follows_section_vi_a() -> None:
    market = generate(40, 30, 20, np.random.default_rng(0))
    v = market.valuations
    assert np.all((v >= 8 * math.log(5001)) & (v <= 12 * math.log(5001)))
    assert market.data_bids.min() >= 1.0 and market.data_bids.max() <= 6.0  # 500·[10,30]·σ
    assert market.uav_bids.min() >= 100 / 300 and market.uav_bids.max() <= 5.0  # s / r
    flying = generate(4, 3, 20, np.random.default_rng(0), ScenarioConfig(flight_weight=1.0))
    assert flying.uav_bids.min() >= 100 / 300 + 0.2


def test_generation_is_deterministic_by_seed() -> None:
    a = generate(3, 4, 5, np.random.default_rng(7))
    b = generate(3, 4, 5, np.random.default_rng(7))
    assert np.array_equal(a.uav_bids, b.uav_bids) and np.array_equal(a.valuations, b.valuations)


@pytest.mark.parametrize("name", ["buyers", "data_sellers", "uav_sellers"])
def test_non_positive_counts_name_the_field(name: str) -> None:
    counts = {"buyers": 2, "data_sellers": 2, "uav_sellers": 2, name: 0}
    with pytest.raises(ConfigError, match=name):
        generate(rng=np.random.default_rng(0), **counts)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha1", (12.0, 8.0)),
        ("data_size", (-1.0, 3.0)),
        ("alpha2", math.nan),
        ("link_rate", (0.0, 1.0)),
    ],
)
def test_bad_scenario_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"scenario.{field}"):
        ScenarioConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("foga.population", {"population": 1}),
        ("foga.generations", {"generations": -1}),
        ("foga.crossover", {"crossover": 1.5}),
        ("foga.local_search", {"local_search": -0.1}),
        ("foga.elites", {"elites": 99}),
    ],
)
def test_bad_foga_params_name_the_field(field: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=field):
        FogaParams(**kwargs)


def test_unknown_rules_name_the_field() -> None:
    market = MatchingMarket(**GOOD)
    with pytest.raises(ConfigError, match="payment"):
        subopt(market, payment="vickrey")
    with pytest.raises(ConfigError, match="split"):
        subopt(market, split="equal")
    with pytest.raises(ConfigError, match="split"):
        opt(market, split="critical")
    with pytest.raises(ConfigError, match="method"):
        run_method("Magic", market, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"seller\.kind"):
        SellerRef("relay", 0)


@pytest.mark.parametrize(
    "mechanism",
    [
        subopt,
        functools.partial(subopt, split="critical"),
        opt,
        functools.partial(opt, split="vcg_seller"),
    ],
)
def test_market_without_feasible_pairs_leaves_every_buyer_unmatched(mechanism: Callable) -> None:
    market = MatchingMarket(np.array([1.0, 0.5]), np.full((2, 2), 2.0), np.ones((2, 2, 2)))
    outcome = mechanism(market)
    assert outcome.matching.unmatched_buyers == [0, 1] and outcome.matching.revenue == 0.0
    assert not outcome.data_payments.any() and not outcome.uav_payments.any()
