"""Costs (29)–(32) against hand computations, and validation of the ED arrays."""

from __future__ import annotations

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.lower.costs import (
    ED_FIELDS,
    MarketParams,
    blockchain_cost,
    comm_cost,
    compute_cost,
    data_cost,
    make_ed_arrays,
)

ONE_ED = {
    "data_size": [[2000.0]],
    "theta": [[0.5]],
    "gamma": [[3e-7]],
    "beta": [[1e-8]],
    "power": [[0.2]],
    "rate": [[10.0]],
    "phi": [[2e-4]],
}


def test_costs_match_the_papers_formulas() -> None:
    eds = make_ed_arrays([[True]], **ONE_ED)
    m = MarketParams()
    assert data_cost(eds)[0, 0] == pytest.approx(2000 * 3e-7)  # (29)
    assert compute_cost(eds, 0.7, m)[0, 0] == pytest.approx(
        2000 * 5 * 100 * 0.5 * 1e-8 * 0.7**2
    )  # (30)
    assert comm_cost(eds, m)[0, 0] == pytest.approx(0.2 * (0.5 / 10.0) * 100 * 2e-4)  # (31)
    assert blockchain_cost(3, m)[()] == pytest.approx(3.48e-2 * 7.68 * 2e-2 * 3)  # (32)
    assert blockchain_cost(3, m, g_e=1e5)[()] == pytest.approx(3.48e-2 * 10 * 2e-2 * 3)


def test_normalisation_makes_blockchain_cost_a_small_share_of_utility() -> None:
    m = MarketParams()
    literal = m.a6 * m.g_e * 1e-2  # the paper's units: per worker at its lowest gas price
    assert literal > 40 * 0.64  # ≫ U_d ≤ a5: every market would be empty
    per_worker = blockchain_cost(1, MarketParams(gas_price=1e-2))[()]
    assert per_worker / 0.64 == pytest.approx(0.0042, abs=1e-4)


@pytest.mark.parametrize(
    "name",
    [
        "delta_1",
        "delta_g",
        "model_size",
        "kappa",
        "a6",
        "gas_price",
        "gas_unit",
        "g_e",
        "emd_floor",
    ],
)
def test_non_positive_market_constants_name_the_field(name: str) -> None:
    with pytest.raises(ConfigError, match=f"market.{name}"):
        MarketParams(**{name: 0.0})


@pytest.mark.parametrize("name", ["data_size", "gamma", "beta", "power", "rate", "phi"])
@pytest.mark.parametrize("value", [0.0, -1.0, np.nan])
def test_non_positive_ed_values_name_the_field(name: str, value: float) -> None:
    columns = {**ONE_ED, name: [[value]]}
    with pytest.raises(ConfigError, match=name):
        make_ed_arrays([[True]], **columns)


def test_emd_outside_its_range_is_rejected() -> None:
    with pytest.raises(ConfigError, match="theta"):
        make_ed_arrays([[True]], **{**ONE_ED, "theta": [[2.5]]})


def test_empty_ed_sets_are_rejected() -> None:
    with pytest.raises(ConfigError, match="eds"):
        make_ed_arrays([[False]], **ONE_ED)
    with pytest.raises(ConfigError, match="eds"):
        make_ed_arrays(np.zeros((0, 0), bool), **{k: np.zeros((0, 0)) for k in ED_FIELDS})


def test_padding_is_ignored_and_shapes_are_checked() -> None:
    columns = {k: [[v[0][0], -5.0]] for k, v in ONE_ED.items()}
    eds = make_ed_arrays([[True, False]], **columns)
    assert eds.shape == (1, 2) and eds.data_size[0, 1] == 1.0
    with pytest.raises(ConfigError, match="gamma"):
        make_ed_arrays([[True, False]], **{**columns, "gamma": [[1.0]]})
    with pytest.raises(ConfigError, match="columns"):
        make_ed_arrays([[True]], data_size=[[1.0]])
