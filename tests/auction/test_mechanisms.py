"""Myerson, VCG and the baselines against brute force, closed forms and Monte Carlo."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbcim.auction.baselines import Greedy, NoIncentive, RandomMechanism, get_baselines
from tbcim.auction.mechanism import Mechanism, Profiles, check_outcome, realise
from tbcim.auction.myerson import Myerson
from tbcim.auction.settings import get_setting, single_setting, tbcim_setting
from tbcim.auction.vcg import VCG
from tbcim.errors import ConfigError
from tbcim.lower.quality import data_utility

PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def unit_profiles(bids: np.ndarray) -> Profiles:
    bids = np.atleast_2d(np.asarray(bids, dtype=float))
    return Profiles(bids, np.zeros_like(bids), np.zeros_like(bids))


def utilities(mechanism: Mechanism, profiles: Profiles, costs: np.ndarray) -> np.ndarray:
    z, p = mechanism.outcome(profiles)
    return p - z * costs


# ---- brute-force oracles (plain Python loops, no code shared with the mechanisms) ------------


def brute_welfare(value_of, bids: np.ndarray, excluded: int | None = None):
    """max over winner sets T (not containing ``excluded``) of value_of(T) − Σ_T b, and argmax."""
    best, best_set = 0.0, ()
    for size in range(1, len(bids) + 1):
        for winners in itertools.combinations(range(len(bids)), size):
            if excluded in winners:
                continue
            welfare = value_of(winners) - sum(bids[s] for s in winners)
            if welfare > best + 1e-15:
                best, best_set = welfare, winners
    return best, best_set


def brute_vcg(value_of, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welfare-maximising set and Clarke payments by enumeration, for one profile."""
    best, winners = brute_welfare(value_of, bids)
    z, p = np.zeros(len(bids)), np.zeros(len(bids))
    for s in winners:
        z[s] = 1.0
        p[s] = bids[s] + best - brute_welfare(value_of, bids, excluded=s)[0]
    return z, p


def critical_bid(wins, bids: np.ndarray, s: int, high: float) -> float:
    """sup{b : ES s wins at (b, b_−s)} by bisection on a monotone allocation rule."""

    def at(b: float) -> bool:
        trial = bids.copy()
        trial[s] = b
        return wins(trial, s)

    if at(high):
        return high
    lo, hi = bids[s], high
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if at(mid) else (lo, mid)
    return lo


# ---- Myerson -------------------------------------------------------------------------------


def myerson_wins(bids: np.ndarray, s: int, value: float = 1.0, low: float = 0.0) -> bool:
    """Brute force: ES s wins iff it has the largest positive virtual surplus V − J(b)."""
    surplus = [value - (2 * b - low) for b in bids]
    best = max(range(len(bids)), key=lambda i: (surplus[i], -i))
    return best == s and surplus[s] >= 0


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_myerson_matches_virtual_surplus_brute_force(n: int) -> None:
    setting = get_setting(f"single-{n}")
    profiles = setting.sample(60, np.random.default_rng(n))
    z, p = Myerson(setting).outcome(profiles)
    for row, bids in enumerate(profiles.bids):
        for s in range(n):
            wins = myerson_wins(bids, s)
            assert z[row, s] == float(wins)
            expected = critical_bid(myerson_wins, bids, s, 1.0) if wins else 0.0
            assert p[row, s] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_myerson_buyer_utility_by_monte_carlo_matches_quadrature(n, myerson_quadrature) -> None:
    setting = get_setting(f"single-{n}")
    profiles = setting.sample(200_000, np.random.default_rng(100 + n))
    z, p = Myerson(setting).outcome(profiles)
    buyer = setting.buyer_value(z, profiles) - p.sum(axis=1)
    stderr = buyer.std() / np.sqrt(buyer.size)
    assert abs(buyer.mean() - myerson_quadrature(n)) < 4 * stderr
    assert stderr < 1.5e-3


def test_myerson_reserve_is_the_best_reserve() -> None:
    """Brute force over reserves r of 'lowest bid wins below r, paid min(b_(2), r)'."""
    rng = np.random.default_rng(5)
    costs = np.sort(rng.random((100_000, 2)), axis=1)
    reserves = np.linspace(0.0, 1.0, 41)
    utility = [
        np.mean(np.where(costs[:, 0] <= r, 1.0 - np.minimum(costs[:, 1], r), 0.0)) for r in reserves
    ]
    assert reserves[int(np.argmax(utility))] == pytest.approx(
        Myerson(get_setting("single-2")).reserve
    )


# ---- VCG ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_single_winner_vcg_matches_brute_force(n: int) -> None:
    setting = get_setting(f"single-{n}")
    profiles = setting.sample(50, np.random.default_rng(n))
    z, p = VCG(setting).outcome(profiles)
    for row, bids in enumerate(profiles.bids):
        zb, pb = brute_vcg(lambda winners: 1.0 if len(winners) == 1 else -np.inf, bids)
        assert np.array_equal(z[row], zb)
        assert np.allclose(p[row], pb, atol=1e-12)


def test_multi_winner_vcg_matches_brute_force(small_tbcim) -> None:
    profiles = small_tbcim.sample(40, np.random.default_rng(2))
    z, p = VCG(small_tbcim).outcome(profiles)
    assert 0 < z.sum(axis=1).mean() < 3  # non-degenerate: some but not all ESs win
    for row in range(profiles.n_profiles):
        sizes, emds = profiles.data_sizes[row], profiles.emds[row]

        def value_of(winners, sizes=sizes, emds=emds) -> float:
            chosen = list(winners)
            return float(data_utility(sizes[chosen].sum(), emds[chosen].mean()))

        zb, pb = brute_vcg(value_of, profiles.bids[row])
        assert np.array_equal(z[row], zb)
        assert np.allclose(p[row], pb, atol=1e-12)


@pytest.mark.parametrize("name", ["single-3", "tbcim-small"])
def test_vcg_is_truthful_and_ir_on_a_bid_grid(name: str, small_tbcim) -> None:
    setting = small_tbcim if name == "tbcim-small" else get_setting(name)
    profiles = setting.sample(30, np.random.default_rng(9))
    vcg = VCG(setting)
    truthful = utilities(vcg, profiles, profiles.bids)
    assert truthful.min() >= -1e-12  # IR
    grid = np.linspace(setting.bid_low, setting.bid_high, 81)
    for s in range(setting.n_servers):
        for bid in grid:
            lie = profiles.bids.copy()
            lie[:, s] = bid
            u = utilities(vcg, profiles.with_bids(lie), profiles.bids)[:, s]
            assert np.all(u <= truthful[:, s] + 1e-12)


def test_vcg_rejects_too_many_servers_and_wrong_settings(tbcim3) -> None:
    with pytest.raises(ConfigError, match="n_servers"):
        VCG(tbcim_setting(13, pool_size=50))
    with pytest.raises(ConfigError, match="single-winner unit-value"):
        Myerson(tbcim3)


@pytest.mark.parametrize("cls", [Myerson, VCG, Greedy, RandomMechanism, NoIncentive])
def test_mechanisms_reject_profiles_from_another_setting(cls, single3) -> None:
    mechanism = cls(single3)
    with pytest.raises(ConfigError, match="edge servers"):
        mechanism.outcome(unit_profiles(np.full((2, 4), 0.5)))
    with pytest.raises(ConfigError, match="bid space"):
        mechanism.outcome(unit_profiles([[0.1, 0.2, 1.5]]))


# ---- hypothesis properties: IR and monotone allocations ------------------------------------

unit_bids = st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3)


@PROPERTY
@given(bids=unit_bids, server=st.integers(0, 2), other=st.floats(0.0, 1.0))
def test_single_winner_mechanisms_are_ir_and_monotone(bids, server, other, single3) -> None:
    for mechanism in get_baselines(single3):
        profiles = unit_profiles(bids)
        u = utilities(mechanism, profiles, profiles.bids)
        assert u.min() >= -1e-12, mechanism.name
        low, high = sorted([bids[server], other])
        at = [unit_profiles(np.where(np.arange(3) == server, b, bids)) for b in (low, high)]
        z_low, z_high = (mechanism.outcome(p)[0][0, server] for p in at)
        assert z_high <= z_low + 1e-12, mechanism.name


@PROPERTY
@given(
    types=st.lists(st.integers(0, 399), min_size=3, max_size=3),
    fractions=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
    server=st.integers(0, 2),
    other=st.floats(0.0, 1.0),
)
def test_tbcim_mechanisms_are_ir_and_monotone(types, fractions, server, other, small_tbcim):
    pool = small_tbcim.pool
    high = small_tbcim.bid_high
    index = np.asarray(types) % pool.size  # the pool lost its costliest types to the reserve
    sizes, emds = pool.data_size[index][None, :], pool.emd[index][None, :]
    bids = np.asarray(fractions)[None, :] * high
    for mechanism in get_baselines(small_tbcim):
        profiles = Profiles(bids, sizes, emds)
        assert utilities(mechanism, profiles, bids).min() >= -1e-12, mechanism.name
        low_bid, high_bid = sorted([bids[0, server], other * high])
        z = []
        for b in (low_bid, high_bid):
            trial = bids.copy()
            trial[0, server] = b
            z.append(mechanism.outcome(Profiles(trial, sizes, emds))[0][0, server])
        assert z[1] <= z[0] + 1e-12, mechanism.name


# ---- baselines -----------------------------------------------------------------------------


def test_greedy_multi_winner_matches_a_loop(small_tbcim) -> None:
    profiles = small_tbcim.sample(40, np.random.default_rng(4))
    z, p = Greedy(small_tbcim).outcome(profiles)
    for row in range(profiles.n_profiles):
        bids, sizes, emds = profiles.bids[row], profiles.data_sizes[row], profiles.emds[row]
        winners: list[int] = []
        current = 0.0
        for s in sorted(range(3), key=lambda i: bids[i]):
            trial = [*winners, s]
            value = float(data_utility(sizes[trial].sum(), emds[trial].mean()))
            if value - current >= bids[s]:
                winners, current = trial, value
        expected = np.isin(np.arange(3), winners).astype(float)
        assert np.array_equal(z[row], expected)
        assert np.allclose(p[row], expected * bids)


def test_greedy_single_is_first_price(single3) -> None:
    z, p = Greedy(single3).outcome(unit_profiles([[0.4, 0.2, 0.9]]))
    assert np.array_equal(z, [[0.0, 1.0, 0.0]]) and np.allclose(p, [[0.0, 0.2, 0.0]])


@pytest.mark.parametrize("multi", [False, True])
def test_random_posted_price_matches_an_average_over_prices(multi: bool, small_tbcim) -> None:
    setting = small_tbcim if multi else single_setting(4, bid_low=0.1, bid_high=0.9)
    profiles = setting.sample(20, np.random.default_rng(8))
    z, p = RandomMechanism(setting).outcome(profiles)
    k = 20_000  # midpoint rule over the posted price P ~ U[low, high]
    prices = setting.bid_low + (np.arange(k) + 0.5) / k * setting.bid_range
    for row, bids in enumerate(profiles.bids):
        eligible = bids[None, :] <= prices[:, None]  # (k, S)
        if multi:
            share = eligible.astype(float)
        else:
            share = eligible / np.maximum(eligible.sum(axis=1, keepdims=True), 1)
        assert np.allclose(z[row], share.mean(axis=0), atol=2e-4)
        assert np.allclose(p[row], (share * prices[:, None]).mean(axis=0), atol=2e-4)


def test_no_incentive_reimburses_reported_costs(single3, small_tbcim, rng) -> None:
    for setting, share in ((single3, 1 / 3), (small_tbcim, 1.0)):
        profiles = setting.sample(10, rng)
        z, p = NoIncentive(setting).outcome(profiles)
        assert np.allclose(z, share) and np.allclose(p, share * profiles.bids)


def test_get_baselines_per_setting(single3, tbcim3) -> None:
    assert [m.name for m in get_baselines(single3)] == [
        "myerson",
        "vcg",
        "greedy",
        "random",
        "no-incentive",
    ]
    assert [m.name for m in get_baselines(tbcim3)] == [
        "vcg",
        "capped-vcg",
        "greedy",
        "random",
        "no-incentive",
    ]
    assert all(isinstance(m, Mechanism) for m in get_baselines(tbcim3))


# ---- running an outcome for real (winners drawn from z, paid p/z) ---------------------------


@pytest.mark.parametrize("multi", [False, True])
def test_realise_matches_expected_allocation_and_payment(multi: bool) -> None:
    z = np.array([[0.2, 0.5, 0.1]] * 40_000)
    if multi:
        z = np.array([[0.2, 0.9, 0.6]] * 40_000)
    p = z * np.array([0.3, 0.1, 0.8])
    winners, paid = realise(z, p, multi, np.random.default_rng(0))
    assert np.allclose(winners.mean(axis=0), z[0], atol=0.01)
    assert np.allclose(paid.mean(axis=0), p[0], atol=0.01)
    if not multi:
        assert winners.sum(axis=1).max() == 1
    again = realise(z, p, multi, np.random.default_rng(0))
    assert np.array_equal(again[0], winners) and np.array_equal(again[1], paid)


# ---- outcome checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("z", "p", "multi", "match"),
    [
        (np.zeros((2, 2)), np.zeros((2, 3)), True, "allocation: shape"),
        (np.zeros((2, 3)), np.zeros((3, 3)), True, "payment: shape"),
        (np.full((2, 3), np.nan), np.zeros((2, 3)), True, "NaN"),
        (np.zeros((2, 3)), np.full((2, 3), np.inf), True, "NaN or infinite"),
        (np.full((2, 3), 1.5), np.zeros((2, 3)), True, r"\[0, 1\]"),
        (np.full((2, 3), 0.5), np.zeros((2, 3)), False, "sum above 1"),
    ],
)
def test_check_outcome_rejects_bad_outputs(z, p, multi, match) -> None:
    profiles = unit_profiles(np.full((2, 3), 0.5))
    with pytest.raises(ConfigError, match=match):
        check_outcome(z, p, profiles, multi)
