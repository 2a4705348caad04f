"""TBCIM Figs. 6-8 (tbcim.figures.auction_figures): each claim's decision rule on synthetic data
against a hand computation, Fig. 8's count on bids whose award is known by hand, and Fig. 8 run
end to end through `tbcim figures --quick` (reduced to 1 market x 2 tasks per seed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tbcim.auction.mechanism import Profiles
from tbcim.auction.settings import tbcim_setting
from tbcim.cli import main
from tbcim.figures import auction_figures as af
from tbcim.market.bidding import ServerBid
from tbcim.market.outcome import LoadedMechanism
from tbcim.market.run import prepare_market

SETTING = tbcim_setting(3)
BID_HIGH = SETTING.bid_high


def _history(utilities: list[float], regret: float) -> list[dict[str, Any]]:
    return [
        {"val_buyer_utility": u, "val_regret_mean": regret, "epoch": i + 1}
        for i, u in enumerate(utilities)
    ]


# ----- Fig. 6 ----------------------------------------------------------------------------------


def test_training_verdict_measures_the_last_fifth_against_the_bid_range() -> None:
    # 10 epochs: the last fifth is epochs 9-10, compared with epoch 8 too -> values 0.50, 0.52,
    # 0.51: spread 0.02 of a bid range of 1.0 (converged at 5 %).
    utilities = [0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.48, 0.50, 0.52, 0.51]
    verdict = af.training_verdict(_history(utilities, 5e-4), bid_range=1.0)
    assert verdict["epochs"] == 10
    assert verdict["utility_spread_last_fifth"] == pytest.approx(0.02)
    assert verdict["converged"] and verdict["regret_near_zero"]
    assert verdict["final_val_buyer_utility"] == 0.51
    # The same curve on a bid range of 0.2: a spread of 10 % is not converged.
    assert not af.training_verdict(_history(utilities, 5e-4), bid_range=0.2)["converged"]


def test_training_verdict_regret_threshold_and_a_rising_tail() -> None:
    rising = [0.1 * i for i in range(5)]  # last fifth: epoch 5 against epoch 4 -> 0.1
    verdict = af.training_verdict(_history(rising, af.REGRET_TOL), bid_range=1.0)
    assert verdict["utility_spread_last_fifth"] == pytest.approx(0.1)
    assert not verdict["converged"]
    assert verdict["regret_near_zero"]  # at the tolerance counts as near zero
    above = af.training_verdict(_history([0.3] * 5, 2 * af.REGRET_TOL), bid_range=1.0)
    assert above["converged"] and not above["regret_near_zero"]
    one_epoch = af.training_verdict(_history([0.3], 0.0), bid_range=1.0)
    assert one_epoch["utility_spread_last_fifth"] == 0.0


@pytest.mark.parametrize(
    ("history", "bid_range", "message"),
    [([], 1.0, "at least one epoch"), (_history([0.1], 0.0), 0.0, "must be positive")],
)
def test_training_verdict_refuses_bad_input(
    history: list[dict[str, Any]], bid_range: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        af.training_verdict(history, bid_range)


# ----- Fig. 7 ----------------------------------------------------------------------------------


def test_peak_at_cost_within_five_percent_of_the_bid_range() -> None:
    assert af.peaks_at_cost(0.30, 0.25, 1.0)  # 5 % off: at the tolerance
    assert not af.peaks_at_cost(0.31, 0.25, 1.0)
    assert af.peaks_at_cost(0.024, 0.025, 0.07)
    assert not af.peaks_at_cost(0.0, 0.025, 0.07)  # a win probability peaking at the lowest bid


# ----- Fig. 8 ----------------------------------------------------------------------------------


def test_change_verdict_against_mean_and_sample_std() -> None:
    # changes -2.0, -2.2: mean -2.1, sample std 0.1414 -> far beyond 2 std
    assert af.change_verdict([-2.0, -2.2], lower=True)
    # changes -0.5, -1.5: mean -1.0, std 0.707 -> -1.0 > -1.414: within the spread
    assert not af.change_verdict([-0.5, -1.5], lower=True)
    assert not af.change_verdict([0.3], lower=True)  # one seed: std 0, but not lower
    assert af.change_verdict([-0.1], lower=True)
    assert af.change_verdict([0.4, -0.2], lower=False)  # mean 0.1: unchanged
    assert not af.change_verdict([-0.5, -0.7], lower=False)


class Threshold:
    """A stub mechanism: buys every ES bidding below ``cut`` and pays it b̄ (known by hand)."""

    name = "threshold"

    def __init__(self, cut: float) -> None:
        self.cut = cut
        self.seen: list[np.ndarray] = []

    def outcome(self, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
        self.seen.append(profiles.bids.copy())
        z = (profiles.bids < self.cut).astype(float)
        return z, z * BID_HIGH


def _bid(server: int, cost: float, bids: bool = True) -> ServerBid:
    return ServerBid(server, cost, 1000, 200_000, 0.0, 0.0, (server,), (cost,), (0.0,), bids)


def test_selected_counts_the_award_of_the_revealed_bids() -> None:
    costs = [0.2 * BID_HIGH, 0.9 * BID_HIGH, 0.4 * BID_HIGH]
    mechanism = Threshold(0.5 * BID_HIGH)
    loaded = LoadedMechanism("threshold", mechanism, SETTING, None, b"")
    expected, drawn = af.selected(loaded, [_bid(s, c) for s, c in enumerate(costs)], seed=7)
    assert (expected, drawn) == (2.0, 2)  # ESs 0 and 2 bid below the cut
    # the mechanism saw the ESs' costs in their order, as wei rounded back to money units
    np.testing.assert_allclose(mechanism.seen[0], [costs], rtol=1e-12)
    # one ES cannot bid: the market's task expires and selects nobody
    bids = [_bid(0, costs[0]), _bid(1, costs[1], bids=False), _bid(2, costs[2])]
    assert af.selected(loaded, bids, seed=7) == (0.0, 0)


def test_seed_means_and_the_change() -> None:
    rows = [
        {
            "selected_with_cost": w,
            "selected_without_cost": wo,
            "drawn_with_cost": round(w),
            "drawn_without_cost": round(wo),
            "expired_with_cost": int(w == 0),
            "expired_without_cost": 0,
        }
        for w, wo in ((1.0, 3.0), (0.0, 2.5), (2.0, 2.0))
    ]
    means = af._seed_means(rows)
    assert means["selected_with_cost"] == pytest.approx(1.0)
    assert means["selected_without_cost"] == pytest.approx(2.5)
    assert means["change"] == pytest.approx(-1.5)
    assert means["expired_with_cost"] == pytest.approx(1 / 3)


def test_market_counts_without_gas_price_the_two_columns_agree() -> None:
    """At g_e = 0 the blockchain cost c_s^b (32) is 0: both pricings are the same market."""
    config = af.market_config(3, af.market_seed(0, 0))
    assert config.seed == af.market_seed(0, 0) < 2**32
    rows = af.market_counts(config, prepare_market(config), 0.0, tasks=2)
    assert [r["task"] for r in rows] == [0, 1]
    for row in rows:
        assert row["selected_with_cost"] == row["selected_without_cost"]
        assert row["drawn_with_cost"] == row["drawn_without_cost"]
        assert 0.0 <= row["selected_with_cost"] <= 3.0


def test_fig8_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(af, "QUICK_MARKETS", 1)
    monkeypatch.setattr(af, "QUICK_TASKS", 2)
    out = tmp_path / "figs"
    assert main(["figures", "--out", str(out), "--quick", "--fig", "tbcim-fig8"]) == 0
    assert (out / "tbcim-fig8.png").stat().st_size > 0
    with (out / "tbcim-fig8.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2 * 1 * 2  # ES counts x seeds x markets x tasks
    assert set(rows[0]) == {
        "n_servers",
        "seed",
        "market",
        "task",
        "selected_with_cost",
        "drawn_with_cost",
        "expired_with_cost",
        "selected_without_cost",
        "drawn_without_cost",
        "expired_without_cost",
    }
    assert sorted({int(r["n_servers"]) for r in rows}) == [3, 5, 10]
    (claim,) = json.loads((out / "claims.json").read_text())
    assert {"paper", "figure", "claim", "reproduced", "measured", "command"} <= set(claim)
    assert (claim["paper"], claim["figure"]) == ("TBCIM", "Fig. 8")
    assert claim["summary"].count("ESs:") == 3
    assert "--fig tbcim-fig8" in claim["command"] and "--quick" in claim["command"]
    for n in (3, 5, 10):
        part = claim["measured"][f"{n}_ES"]
        ours = [r for r in rows if int(r["n_servers"]) == n]
        per_seed = [
            float(
                np.mean(
                    [float(r["selected_with_cost"]) - float(r["selected_without_cost"]) for r in x]
                )
            )
            for x in ([r for r in ours if r["seed"] == s] for s in ("0", "1"))
        ]
        assert part["change_mean"] == pytest.approx(np.mean(per_seed))
        assert part["change_std"] == pytest.approx(np.std(per_seed, ddof=1))
        assert part["verdict"] == af.change_verdict(per_seed, lower=n != 3)
    assert claim["reproduced"] == all(claim["measured"][f"{n}_ES"]["verdict"] for n in (3, 5, 10))


def test_fig6_and_fig7_share_the_trained_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny preset: 3 trainings for Fig. 6 (one per ES count), none more for Fig. 7; the claim's
    numbers are :func:`training_verdict` of the saved models' histories; two workers train the
    same models as one."""
    tiny = {"n_train": 200, "n_val": 40, "batch_size": 100, "epochs": 2, "val_grid": 5}
    monkeypatch.setattr(af, "QUICK_TRAIN", {**af.QUICK_TRAIN, **tiny})
    monkeypatch.setattr(af, "REFERENCE_SAMPLES", 50)
    monkeypatch.setattr(af, "QUICK_BID_SAMPLES", 50)
    trained: list[str] = []
    real = af.train_learned

    def counting(name: str, setting: Any, *args: Any, **kwargs: Any) -> Any:
        trained.append(setting.name)
        return real(name, setting, *args, **kwargs)

    monkeypatch.setattr(af, "train_learned", counting)
    out = tmp_path / "figs"
    figs = "tbcim-fig6,tbcim-fig7"
    flags = ["figures", "--quick", "--seeds", "0", "--jobs", "1"]
    assert main([*flags, "--out", str(out), "--fig", figs]) == 0
    assert trained == ["tbcim-10", "tbcim-5", "tbcim-3"]  # the largest first
    claims = {c["name"]: c for c in json.loads((out / "claims.json").read_text())}
    assert set(claims) == {"tbcim-fig6", "tbcim-fig7"}
    for name in claims:
        assert (out / f"{name}.png").stat().st_size > 0
    with (out / "tbcim-fig6.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {"model", "epoch", "val_buyer_utility", "val_regret_mean"} <= set(rows[0])
    assert [r["model"] for r in rows] == [f"tbcim-{n}" for n in (3, 5, 10) for _ in range(2)]
    from tbcim.auction.ranet.checkpoint import load_model

    fig6 = claims["tbcim-fig6"]
    for n in (3, 5, 10):
        model, meta = load_model(out / "runs" / f"ranet-tbcim-{n}-seed0.pt")
        verdict = af.training_verdict(meta["history"], model.setting.bid_range)
        part = fig6["measured"][f"{n}_ES"]
        assert part["final_val_regret_mean_mean"] == pytest.approx(verdict["final_val_regret_mean"])
        assert part["converged_runs"] == int(verdict["converged"]) and part["runs"] == 1
    fig7 = claims["tbcim-fig7"]
    with (out / "tbcim-fig7.csv").open() as handle:
        curve = list(csv.DictReader(handle))
    assert {"bid", "win_probability", "utility"} <= set(curve[0])
    best = max(curve, key=lambda r: float(r["win_probability"]))
    assert fig7["measured"]["bid_at_max_win_probability"] == pytest.approx(float(best["bid"]))
    assert fig7["reproduced"] == fig7["measured"]["win_probability_peaks_at_cost"]
    # two worker processes train the same models
    parallel = tmp_path / "parallel"
    assert main([*flags[:-1], "2", "--out", str(parallel), "--fig", "tbcim-fig6"]) == 0
    assert (parallel / "tbcim-fig6.csv").read_text() == (out / "tbcim-fig6.csv").read_text()
