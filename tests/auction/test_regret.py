"""The regret evaluator against analytic best responses; evaluate() end to end; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tbcim.auction.baselines import Greedy, NoIncentive
from tbcim.auction.evaluate import evaluate
from tbcim.auction.mechanism import Profiles
from tbcim.auction.myerson import Myerson
from tbcim.auction.regret import misreport_scan, regret_per_profile
from tbcim.auction.vcg import VCG
from tbcim.errors import ConfigError


class FirstPrice:
    """Pay-your-bid reverse auction: lowest bid wins (lowest index on ties), paid its bid."""

    name = "first-price"

    def outcome(self, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros(profiles.shape)
        z[np.arange(profiles.n_profiles), np.argmin(profiles.bids, axis=1)] = 1.0
        return z, z * profiles.bids


class BidLottery:
    """z_s = (1 − b_s)/S, pay-as-bid: u(b') = (1 − b')(b' − c)/S, best b' = (1 + c)/2."""

    name = "bid-lottery"

    def outcome(self, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
        z = (1.0 - profiles.bids) / profiles.n_servers
        return z, z * profiles.bids

    @staticmethod
    def torch_outcome(bids: torch.Tensor, sizes: torch.Tensor, emds: torch.Tensor):
        z = (1.0 - bids) / bids.shape[1]
        return z, z * bids


class Increasing:
    """A deliberately non-monotone allocation: z_s = b_s/S grows with the bid."""

    name = "increasing"

    def outcome(self, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
        z = profiles.bids / profiles.n_servers
        return z, z * profiles.bids


class HiddenPeak:
    """One ES always wins and is paid p(b): a narrow peak of 0.5 at b = 0.3024 (half-width
    0.004, between grid points) and a plateau of 0.25 on [0.5, 1]; 0 elsewhere."""

    name = "hidden-peak"

    @staticmethod
    def pay(bids: np.ndarray) -> np.ndarray:
        peak = np.maximum(0.0, 0.5 - 125.0 * np.abs(bids - 0.3024))
        return np.where(bids >= 0.5, 0.25, peak)

    def outcome(self, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
        return np.ones(profiles.shape), self.pay(profiles.bids)


def first_price_best_response_gain(costs: np.ndarray) -> np.ndarray:
    """Analytic regret of the first-price auction: the winner raises its bid to the second
    lowest cost (the top of the bid space, 1, when alone); losers cannot gain."""
    regret = np.zeros_like(costs)
    rows = np.arange(costs.shape[0])
    order = np.argsort(costs, axis=1)
    second = costs[rows, order[:, 1]] if costs.shape[1] > 1 else np.ones(costs.shape[0])
    regret[rows, order[:, 0]] = second - costs[rows, order[:, 0]]
    return regret


@pytest.mark.parametrize("mechanism_cls", [FirstPrice, None])
def test_regret_finds_the_first_price_best_response(mechanism_cls, single3) -> None:
    mechanism = FirstPrice() if mechanism_cls else Greedy(single3)  # Greedy (G1) is first price
    profiles = single3.sample(200, np.random.default_rng(1))
    regret = regret_per_profile(mechanism, profiles, single3)
    expected = first_price_best_response_gain(profiles.bids)
    assert expected.max() > 0.3  # the lie is worth a lot
    assert np.all(regret <= expected + 1e-12)
    assert np.allclose(regret, expected, atol=1e-4)


def test_zoom_refinement_sharpens_the_grid(single3) -> None:
    profiles = single3.sample(200, np.random.default_rng(2))
    expected = first_price_best_response_gain(profiles.bids)
    coarse = regret_per_profile(FirstPrice(), profiles, single3, grid_points=21, zoom_rounds=0)
    fine = regret_per_profile(FirstPrice(), profiles, single3, grid_points=21)
    assert np.abs(coarse - expected).max() > 1e-2
    assert np.abs(fine - expected).max() < 1e-3


def test_zoom_explores_more_than_the_best_grid_point() -> None:
    from tbcim.auction.settings import get_setting

    single1 = get_setting("single-1")
    costs = np.array([[0.05], [0.2], [0.7]])
    profiles = Profiles(costs, np.zeros((3, 1)), np.zeros((3, 1)))
    expected = 0.5 - HiddenPeak.pay(costs)  # u(b') − u(c) = p(b') − p(c)
    one_start = regret_per_profile(HiddenPeak(), profiles, single1, zoom_starts=1)
    assert np.allclose(one_start, 0.25 - HiddenPeak.pay(costs))  # stuck on the plateau
    several = regret_per_profile(HiddenPeak(), profiles, single1)
    assert np.all(several <= expected + 1e-12)
    assert np.allclose(several, expected, atol=1e-3)


def test_gradient_refinement_reaches_the_interior_optimum(single3) -> None:
    profiles = single3.sample(100, np.random.default_rng(3))
    expected = (1.0 - profiles.bids) ** 2 / 12.0
    coarse = dict(grid_points=11, zoom_rounds=0)
    grid_only = regret_per_profile(BidLottery(), profiles, single3, **coarse)
    refined = regret_per_profile(
        BidLottery(),
        profiles,
        single3,
        refine_steps=40,
        torch_outcome=BidLottery.torch_outcome,
        **coarse,
    )
    assert np.abs(grid_only - expected).max() > 5e-4  # up to (step/2)²/S = 8.3e-4
    assert np.all(refined <= expected + 1e-12)
    assert np.abs(refined - expected).max() < 2e-5


def test_gradient_refinement_tolerates_a_bid_independent_torch_outcome(single3) -> None:
    profiles = single3.sample(10, np.random.default_rng(3))

    def constant(bids: torch.Tensor, sizes: torch.Tensor, emds: torch.Tensor):
        z = torch.full_like(bids, 1.0 / 3)
        return z, z * 0.5

    fixed = regret_per_profile(NoIncentive(single3), profiles, single3, torch_outcome=constant)
    plain = regret_per_profile(NoIncentive(single3), profiles, single3)
    assert np.array_equal(fixed, plain)


@pytest.mark.parametrize("name", ["single-3", "tbcim-small"])
def test_truthful_mechanisms_have_zero_regret(name: str, single3, small_tbcim) -> None:
    setting = small_tbcim if name == "tbcim-small" else single3
    profiles = setting.sample(60, np.random.default_rng(4))
    mechanisms = [VCG(setting)] + ([Myerson(setting)] if name == "single-3" else [])
    for mechanism in mechanisms:
        scan = misreport_scan(mechanism, profiles, setting)
        assert scan.regret.max() < 1e-9 * setting.bid_range, mechanism.name
        assert scan.monotone_violation.max() == 0.0


def test_no_incentive_regret_is_bidding_the_top(small_tbcim) -> None:
    profiles = small_tbcim.sample(50, np.random.default_rng(5))
    scan = misreport_scan(NoIncentive(small_tbcim), profiles, small_tbcim)
    assert np.allclose(scan.regret, small_tbcim.bid_high - profiles.bids, atol=1e-12)
    assert np.allclose(scan.best_misreport, small_tbcim.bid_high)


def test_monotonicity_check_flags_increasing_allocations(single3) -> None:
    profiles = single3.sample(20, np.random.default_rng(6))
    scan = misreport_scan(Increasing(), profiles, single3, grid_points=11)
    assert np.allclose(scan.monotone_violation, 0.1 / 3)
    report = evaluate(Increasing(), single3, profiles, baselines=False, grid_points=11)
    assert report["monotone"] is False and report["monotone_violation_rate"] == 1.0
    lenient = evaluate(
        Increasing(), single3, profiles, baselines=False, grid_points=11, monotone_tol=0.05
    )
    assert lenient["monotone"] is True


def test_evaluate_reports_every_figure_and_is_deterministic(single3) -> None:
    profiles = single3.sample(400, np.random.default_rng(7))
    report = evaluate(Myerson(single3), single3, profiles, baseline_regret_samples=100)
    z, p = Myerson(single3).outcome(profiles)
    costs = profiles.bids
    assert report["buyer_utility"] == pytest.approx(np.mean(z.sum(1) - p.sum(1)))
    assert report["social_welfare"] == pytest.approx(np.mean(z.sum(1) - (z * costs).sum(1)))
    assert report["es_surplus"] == pytest.approx(np.mean((p - z * costs).sum(1)))
    assert report["optimal_buyer_utility"] == pytest.approx(0.53125)
    assert report["regret_mean"] == 0.0 and report["regret_max"] == 0.0
    assert report["ir_violation_rate"] == 0.0 and report["monotone"] is True
    assert report["samples"] == 400
    assert set(report["baselines"]) == {"myerson", "vcg", "greedy", "random", "no-incentive"}
    for figures in report["baselines"].values():
        assert {"buyer_utility", "social_welfare", "regret_mean"} <= set(figures)
        assert figures["regret_samples"] == 100
    assert report["baselines"]["vcg"]["regret_mean"] == 0.0
    assert report["baselines"]["greedy"]["regret_mean"] > 0.01
    assert report == evaluate(Myerson(single3), single3, profiles, baseline_regret_samples=100)


def test_evaluate_multi_winner_reports_realised_value(small_tbcim) -> None:
    profiles = small_tbcim.sample(60, np.random.default_rng(8))
    report = evaluate(VCG(small_tbcim), small_tbcim, profiles, baseline_regret_samples=20)
    # VCG allocates 0/1, so the relaxation and the realised value coincide.
    assert report["buyer_utility_realised"] == pytest.approx(report["buyer_utility"])
    assert report["regret_max"] < 1e-9
    random_report = report["baselines"]["random"]
    # A fractional allocation: the realised value differs from the relaxation (U2).
    assert random_report["buyer_utility_realised"] != pytest.approx(random_report["buyer_utility"])


def test_normalised_regret_uses_the_bid_range(single3) -> None:
    from tbcim.auction.settings import single_setting

    wide = single_setting(3, bid_low=0.0, bid_high=2.0, value=2.0)
    profiles = Profiles(
        single3.sample(50, np.random.default_rng(9)).bids * 2.0,
        np.zeros((50, 3)),
        np.zeros((50, 3)),
    )
    base = Profiles(profiles.bids / 2.0, profiles.data_sizes, profiles.emds)
    wide_report = evaluate(FirstPrice(), wide, profiles, baselines=False)
    base_report = evaluate(FirstPrice(), single3, base, baselines=False)
    assert wide_report["regret_mean"] == pytest.approx(base_report["regret_mean"], rel=1e-6)


# ---- bad input ------------------------------------------------------------------------------


class WrongShape:
    name = "wrong-shape"

    def outcome(self, profiles: Profiles):
        return np.zeros((profiles.n_profiles, 1)), np.zeros((profiles.n_profiles, 1))


class NanPayments:
    name = "nan"

    def outcome(self, profiles: Profiles):
        return np.zeros(profiles.shape), np.full(profiles.shape, np.nan)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(grid_points=1), "grid_points"),
        (dict(grid_points=True), "grid_points"),
        (dict(grid_points=10.5), "grid_points"),
        (dict(refine_steps=-1), "refine_steps"),
        (dict(zoom_rounds=-2), "zoom_rounds"),
        (dict(zoom_points=2), "zoom_points"),
        (dict(zoom_starts=0), "zoom_starts"),
        (dict(monotone_tol=float("nan")), "monotone_tol"),
        (dict(monotone_tol=-1.0), "monotone_tol"),
    ],
)
def test_bad_search_parameters(kwargs: dict, field: str, single3) -> None:
    profiles = single3.sample(3, np.random.default_rng(0))
    with pytest.raises(ConfigError) as err:
        misreport_scan(Myerson(single3), profiles, single3, **kwargs)
    assert err.value.field == field


def test_bad_mechanism_outputs_and_profiles(single3, tbcim3) -> None:
    profiles = single3.sample(3, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"wrong-shape\.allocation"):
        regret_per_profile(WrongShape(), profiles, single3)
    with pytest.raises(ConfigError, match=r"nan\.payment"):
        evaluate(NanPayments(), single3, profiles)
    with pytest.raises(ConfigError, match="edge servers"):
        evaluate(
            Myerson(single3),
            single3,
            Profiles(np.full((2, 4), 0.5), np.zeros((2, 4)), np.zeros((2, 4))),
        )
    with pytest.raises(ConfigError, match="built for setting 'tbcim-3'"):
        regret_per_profile(VCG(tbcim3), profiles, single3)
    with pytest.raises(ConfigError, match="built for setting 'tbcim-3'"):
        evaluate(VCG(tbcim3), single3, profiles)
    with pytest.raises(ConfigError, match="baseline_regret_samples"):
        evaluate(Myerson(single3), single3, profiles, baseline_regret_samples=0)


def test_baseline_report_module_entry_point(tmp_path, capsys) -> None:
    import json

    from tbcim.auction.evaluate import main

    out = tmp_path / "baselines.json"
    args = ["--setting", "single-2", "--samples", "300", "--regret-samples", "40"]
    assert main([*args, "--json", str(out)]) == 0
    table = json.loads(out.read_text())["single-2"]
    assert table["myerson"]["regret_mean"] == 0.0 and table["greedy"]["regret_mean"] > 0
    assert table["myerson"]["buyer_utility"] > table["vcg"]["buyer_utility"] - 0.05
    bad = ["--setting", "single-2", "--regret-samples", "0", "--json", str(tmp_path / "x.json")]
    assert main(bad) == 2
    assert "regret_samples" in capsys.readouterr().out
    assert (
        main(["--setting", "single-2", "--samples", "0", "--json", str(tmp_path / "y.json")]) == 2
    )
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()
