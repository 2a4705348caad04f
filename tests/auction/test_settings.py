"""Settings, profiles and buyer values against independent oracles; every bad-input path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tbcim.auction.mechanism import Profiles
from tbcim.auction.settings import (
    SETTING_NAMES,
    AuctionSetting,
    TbcimSetting,
    UnitValueSetting,
    get_setting,
    load_setting_config,
    myerson_optimal_buyer_utility,
    setting_from_dict,
    tbcim_setting,
)
from tbcim.errors import ConfigError
from tbcim.lower.pricing import server_types
from tbcim.lower.quality import QualityParams, data_utility

# The optimal buyer utilities quoted in the issue / MODEL-NOTES §2 for S = 1..5.
QUOTED_OPTIMA = [0.25, 0.4167, 0.53125, 0.6125, 0.6719]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_single_settings_match_the_quoted_myerson_optima(n: int, myerson_quadrature) -> None:
    setting = get_setting(f"single-{n}")
    assert isinstance(setting, UnitValueSetting)
    assert (setting.n_servers, setting.multi_winner) == (n, False)
    assert (setting.bid_low, setting.bid_high, setting.value) == (0.0, 1.0, 1.0)
    assert setting.optimal_buyer_utility == pytest.approx(myerson_quadrature(n), abs=1e-10)
    assert setting.optimal_buyer_utility == pytest.approx(QUOTED_OPTIMA[n - 1], abs=5e-5)


@pytest.mark.parametrize(
    ("n", "value", "low", "high"), [(2, 1.0, 0.2, 1.0), (3, 0.5, 0.0, 1.0), (2, 3.0, 0.0, 1.0)]
)
def test_closed_form_optimum_for_other_values_and_supports(
    n, value, low, high, myerson_quadrature
) -> None:
    # (2, 3.0, ...): the reserve is capped at the top of the bid space, the buyer always buys.
    expected = myerson_quadrature(n, value, low, high)
    assert myerson_optimal_buyer_utility(n, value, low, high) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_tbcim_settings_draw_from_the_lower_level_pool(n: int) -> None:
    setting = get_setting(f"tbcim-{n}")
    assert isinstance(setting, TbcimSetting) and setting.multi_winner
    assert setting.n_servers == n and setting.optimal_buyer_utility is None
    types = server_types(np.random.default_rng(setting.pool_seed), setting.pool_size)
    assert setting.bid_low == 0.0
    assert setting.bid_high == pytest.approx(np.quantile(types["cost"], setting.bid_quantile))
    profiles = setting.sample(500, np.random.default_rng(1))
    known = {
        (c, d, e)
        for c, d, e in zip(types["cost"], types["data_size"], types["emd"], strict=True)
        if c <= setting.bid_high
    }
    drawn = zip(
        profiles.bids.ravel(), profiles.data_sizes.ravel(), profiles.emds.ravel(), strict=True
    )
    assert all(t in known for t in drawn)
    profiles.validate(setting)


def test_sampling_is_deterministic_per_seed(single3, tbcim3) -> None:
    for setting in (single3, tbcim3):
        a = setting.sample(50, np.random.default_rng(3))
        b = setting.sample(50, np.random.default_rng(3))
        c = setting.sample(50, np.random.default_rng(4))
        assert np.array_equal(a.bids, b.bids) and np.array_equal(a.data_sizes, b.data_sizes)
        assert not np.array_equal(a.bids, c.bids)


def test_single_costs_are_uniform_on_the_bid_space(single3) -> None:
    costs = single3.sample(20_000, np.random.default_rng(0)).bids.ravel()
    assert costs.min() >= 0.0 and costs.max() <= 1.0
    histogram = np.histogram(costs, bins=10, range=(0, 1))[0] / costs.size
    assert np.allclose(histogram, 0.1, atol=0.01)


def test_tbcim_value_of_a_winner_set_is_quality_of_its_data(tbcim3, rng) -> None:
    profiles = tbcim3.sample(20, rng)
    z = (rng.random(profiles.shape) < 0.5).astype(float)
    got = tbcim3.buyer_value(z, profiles)
    for row in range(20):
        winners = z[row] == 1
        if not winners.any():
            assert got[row] == 0.0
            continue
        total = profiles.data_sizes[row, winners].sum()
        mean_emd = profiles.emds[row, winners].mean()
        assert got[row] == pytest.approx(float(data_utility(total, mean_emd)), rel=1e-12)


def test_relaxed_value_uses_expected_data_and_weighted_emd(tbcim3, rng) -> None:
    profiles = tbcim3.sample(5, rng)
    z = rng.random(profiles.shape)
    total = (z * profiles.data_sizes).sum(axis=1)
    theta = (z * profiles.emds).sum(axis=1) / z.sum(axis=1)
    assert np.allclose(tbcim3.buyer_value(z, profiles), data_utility(total, theta), rtol=1e-12)


@pytest.mark.parametrize("name", ["single-3", "tbcim-3"])
def test_torch_buyer_value_matches_numpy_and_has_finite_gradients(name: str, rng) -> None:
    setting = get_setting(name)
    profiles = setting.sample(64, rng)
    z = rng.random(profiles.shape) * 0.3
    z[:4] = 0.0  # no allocation at all: U_d = 0, gradient must stay finite
    tz = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    value = setting.buyer_value_torch(
        tz, torch.tensor(profiles.data_sizes), torch.tensor(profiles.emds)
    )
    assert np.allclose(value.detach().numpy(), setting.buyer_value(z, profiles), rtol=1e-10)
    value.sum().backward()
    assert tz.grad is not None and torch.isfinite(tz.grad).all()


def test_config_file_overrides(tmp_path: Path, myerson_quadrature) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('base = "single-3"\nvalue = 0.5\nname = "half"\n')
    setting = load_setting_config(toml)
    assert isinstance(setting, UnitValueSetting)
    assert (setting.name, setting.value, setting.n_servers) == ("half", 0.5, 3)
    assert setting.optimal_buyer_utility == pytest.approx(myerson_quadrature(3, 0.5))
    js = tmp_path / "t.json"
    js.write_text(
        json.dumps(
            {
                "base": "tbcim-3",
                "n_servers": 4,
                "pool_size": 300,
                "bid_quantile": 1.0,
                "quality": {"a5": 1.0},
            }
        )
    )
    tb = load_setting_config(js)
    assert isinstance(tb, TbcimSetting)
    assert (tb.n_servers, tb.pool_size, tb.quality.a5) == (4, 300, 1.0)
    assert tb.pool is not None and tb.pool.size == 300
    assert tb.bid_high == pytest.approx(tb.pool.cost.max())


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"value": 1.0}, "base"),
        ({"base": "single-9"}, "setting"),
        ({"base": "single-3", "pool_size": 10}, "pool_size"),
        ({"base": "tbcim-3", "value": 2.0}, "value"),
        ({"base": "single-3", "value": -1.0}, "value"),
        ({"base": "single-3", "value": "lots"}, "value"),
        ({"base": "single-3", "n_servers": 0}, "n_servers"),
        ({"base": "single-3", "n_servers": 2.5}, "n_servers"),
        ({"base": "single-3", "bid_high": -1.0}, "bid_high"),
        ({"base": "single-3", "bid_low": math.inf}, "bid_low"),
        ({"base": "tbcim-3", "bid_quantile": 0.1}, "bid_quantile"),
        ({"base": "tbcim-3", "pool_size": 5}, "pool_size"),
        ({"base": "tbcim-3", "pool_seed": "x"}, "pool_seed"),
        ({"base": "tbcim-3", "quality": {"a9": 1.0}}, "quality.a9"),
        ({"base": "tbcim-3", "quality": {"a1": -1.0}}, "quality.a1"),
        ({"base": "tbcim-3", "quality": {"a1": "x"}}, "quality.a1"),
        ({"base": "single-3", "quality": {"a1": 1.0}}, "quality"),
        ({"base": "tbcim-3", "g_e": "x"}, "g_e"),
        ({"base": "tbcim-3", "quality": 3}, "quality"),
    ],
)
def test_bad_setting_configs_name_the_field(config: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        setting_from_dict(config)
    assert err.value.field == field


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_setting_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("base = ")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_setting_config(broken)
    not_table = tmp_path / "list.json"
    not_table.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="table"):
        load_setting_config(not_table)


def test_unknown_setting_name() -> None:
    with pytest.raises(ConfigError) as err:
        get_setting("tbcim-4")
    assert err.value.field == "setting"
    assert set(SETTING_NAMES) >= {"single-3", "single-5", "tbcim-3", "tbcim-5", "tbcim-10"}


def test_bad_sample_counts(single3) -> None:
    for n in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="samples"):
            single3.sample(n, np.random.default_rng(0))  # type: ignore[arg-type]


def test_setting_without_pool_or_with_costs_outside_bids_is_rejected(small_tbcim) -> None:
    common = dict(name="x", n_servers=3, multi_winner=True, bid_low=0.0)
    with pytest.raises(ConfigError, match="pool"):
        TbcimSetting(**common, bid_high=1.0)
    with pytest.raises(ConfigError, match="bid space"):
        TbcimSetting(**common, bid_high=1e-6, pool=small_tbcim.pool)
    with pytest.raises(ConfigError, match="single item"):
        UnitValueSetting(name="x", n_servers=2, multi_winner=True, bid_low=0.0, bid_high=1.0)
    with pytest.raises(NotImplementedError):
        AuctionSetting(name="x", n_servers=2, multi_winner=True, bid_low=0.0, bid_high=1.0).sample(
            1, np.random.default_rng(0)
        )


# ---- Profiles: construction and validation against a setting -------------------------------


def _profiles(bids, sizes=None, emds=None) -> Profiles:
    bids = np.asarray(bids, dtype=float)
    zeros = np.zeros_like(bids) if bids.ndim == 2 else np.zeros((1, 1))
    return Profiles(bids, zeros if sizes is None else sizes, zeros if emds is None else emds)


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        (dict(bids=[[0.1, np.nan, 0.2]]), "bids", "NaN"),
        (dict(bids=[[0.1, np.inf, 0.2]]), "bids", "NaN or infinite"),
        (dict(bids=[0.1, 0.2, 0.3]), "bids", "2-D"),
        (dict(bids=np.zeros((2, 0))), "bids", "at least one"),
        (dict(bids=[[0.1, 0.2]], sizes=np.zeros((1, 3))), "data_sizes", "differs"),
        (dict(bids=[[0.1, 0.2]], emds=np.zeros((2, 2))), "emds", "differs"),
        (dict(bids=[[0.1, 0.2]], sizes=[[1.0, -1.0]]), "data_sizes", "non-negative"),
        (dict(bids=[[0.1, 0.2]], emds=[[-0.1, 0.0]]), "emds", "non-negative"),
        (dict(bids=[[0.1, 0.2]], emds=[[np.nan, 0.0]]), "emds", "NaN"),
    ],
)
def test_bad_profiles_are_rejected(kwargs: dict, field: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as err:
        _profiles(**kwargs)
    assert err.value.field == field


def test_profiles_must_fit_the_setting(single3, tbcim3) -> None:
    with pytest.raises(ConfigError, match="4 edge servers but setting 'single-3' has 3"):
        _profiles(np.full((2, 4), 0.5)).validate(single3)
    with pytest.raises(ConfigError, match="outside the bid space"):
        _profiles([[0.5, 1.2, 0.1]]).validate(single3)
    with pytest.raises(ConfigError, match="outside the bid space"):
        _profiles([[0.5, -0.01, 0.1]]).validate(single3)
    too_costly = np.full((1, 3), tbcim3.bid_high * 1.01)
    with pytest.raises(ConfigError, match="outside the bid space"):
        _profiles(too_costly).validate(tbcim3)
    _profiles([[0.0, 1.0, 0.5]]).validate(single3)  # the bounds themselves are allowed


def test_with_bids_never_broadcasts(single3, rng) -> None:
    profiles = single3.sample(4, rng)
    moved = profiles.with_bids(np.full((4, 3), 0.25))
    assert np.all(moved.bids == 0.25) and moved.data_sizes is profiles.data_sizes
    for bad in (np.full((1, 3), 0.25), np.full((4, 2), 0.25), np.full(3, 0.25)):
        with pytest.raises(ConfigError, match="bids"):
            profiles.with_bids(bad)


def test_buyer_value_rejects_mismatched_allocations(single3, tbcim3, rng) -> None:
    for setting in (single3, tbcim3):
        profiles = setting.sample(4, rng)
        with pytest.raises(ConfigError, match="allocation"):
            setting.buyer_value(np.zeros((4, 2)), profiles)
        with pytest.raises(ConfigError, match="allocation"):
            setting.buyer_value(np.full((4, 3), np.nan), profiles)


def test_quality_params_reach_the_value(small_tbcim, rng) -> None:
    profiles = small_tbcim.sample(8, rng)
    z = np.ones(profiles.shape)
    doubled = tbcim_setting(3, pool_size=400, pool_seed=7, quality=QualityParams(a5=1.28))
    assert np.allclose(doubled.buyer_value(z, profiles), 2 * small_tbcim.buyer_value(z, profiles))


# ---- the realised value (U4) of a fractional allocation ------------------------------------


def test_realised_value_is_the_mean_over_drawn_winner_sets(small_tbcim, rng) -> None:
    from tbcim.auction.mechanism import realise

    realised = tbcim_setting(3, pool_size=400, pool_seed=7, value_model="realised")
    profiles = realised.sample(4, rng)
    z = rng.random(profiles.shape)
    exact = realised.buyer_value(z, profiles)
    draws = 20_000
    for row in range(4):
        rows = np.full(draws, row)
        winners, _ = realise(np.repeat(z[row : row + 1], draws, 0), np.zeros((draws, 3)), True, rng)
        drawn = Profiles(profiles.bids[rows], profiles.data_sizes[rows], profiles.emds[rows])
        values = small_tbcim.buyer_value(winners.astype(float), drawn)  # (U3) per drawn set
        assert exact[row] == pytest.approx(values.mean(), abs=4 * values.std() / np.sqrt(draws))
    # 0/1 allocations: realised (U4) = relaxed (U2); fractional: the relaxation overstates.
    sets = (rng.random(profiles.shape) < 0.5).astype(float)
    assert np.allclose(
        realised.buyer_value(sets, profiles), small_tbcim.buyer_value(sets, profiles)
    )
    # U_d is continuous at D = 0 ((28')): a token allocation to everybody is worth ~nothing
    # under both value models, so the relaxation cannot be gamed with tiny z.
    tiny = np.full(profiles.shape, 1e-3)
    assert small_tbcim.buyer_value(tiny, profiles).max() < 1e-3
    assert realised.buyer_value(tiny, profiles).max() < 1e-3
    # q is concave in D, so the relaxation never understates a fractional allocation (Jensen).
    assert np.all(small_tbcim.buyer_value(z, profiles) >= realised.buyer_value(z, profiles) - 1e-12)


def test_realised_torch_value_matches_numpy(rng) -> None:
    realised = tbcim_setting(3, pool_size=400, pool_seed=7, value_model="realised")
    profiles = realised.sample(16, rng)
    z = rng.random(profiles.shape)
    z[0] = 0.0
    z[1] = 1.0
    tz = torch.tensor(z, requires_grad=True)
    value = realised.buyer_value_torch(
        tz, torch.tensor(profiles.data_sizes), torch.tensor(profiles.emds)
    )
    assert np.allclose(value.detach().numpy(), realised.buyer_value(z, profiles), rtol=1e-10)
    value.sum().backward()
    assert tz.grad is not None and torch.isfinite(tz.grad).all()


def test_bad_value_model() -> None:
    with pytest.raises(ConfigError) as err:
        setting_from_dict({"base": "tbcim-3", "value_model": "optimistic"})
    assert err.value.field == "value_model"
    with pytest.raises(ConfigError, match="2\\^S"):
        tbcim_setting(13, pool_size=50, value_model="realised")
