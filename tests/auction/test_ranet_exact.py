"""RANet-exact (issue 12): monotone by construction, exact threshold payments, zero regret.

Oracles: the allocation on a dense own-bid grid (monotonicity), a fine-grid numpy sum of that
allocation with its rigorous monotone bracket (payments, (X1)), the project's grid + zoom +
gradient regret evaluator (truthfulness), and Myerson's closed form on single-1.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tbcim.auction.mechanism import Mechanism, Profiles
from tbcim.auction.ranet.nets import feature_ranges
from tbcim.auction.ranet_exact import (
    EXACT_PRESETS,
    ExactConfig,
    ExactRANet,
    exact_config_from_mapping,
    exact_preset,
    load_exact_model,
    save_exact_result,
    train_exact,
)
from tbcim.auction.ranet_exact.nets import lattice_integral, lattice_logit
from tbcim.auction.registry import load_learned, training_config
from tbcim.auction.regret import regret_per_profile
from tbcim.auction.settings import AuctionSetting, get_setting
from tbcim.auction.vcg import VCG, CappedVCG
from tbcim.configfile import keyed
from tbcim.errors import ConfigError

GRID = 401  # own bids on the monotonicity grid
FINE = 20_001  # points of the independent numpy integral


def make_model(setting: AuctionSetting, seed: int, scale: float = 1.0) -> ExactRANet:
    """A random-weight model; ``scale`` multiplies every weight (steep or flat lattices)."""
    torch.manual_seed(seed)
    profiles = setting.sample(200, np.random.default_rng(seed))
    model = ExactRANet(setting, (16, 16), 8, 10.0, *feature_ranges(profiles))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(scale)
    return model


def own_bid_sweep(
    mechanism: Mechanism, profiles: Profiles, row: int, server: int, bids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(z_s, p_s) of ES ``server`` in profile ``row`` at each own bid, the others fixed."""
    n = bids.size
    grid = np.repeat(profiles.bids[row : row + 1], n, axis=0)
    grid[:, server] = bids
    trial = Profiles(
        grid,
        np.repeat(profiles.data_sizes[row : row + 1], n, axis=0),
        np.repeat(profiles.emds[row : row + 1], n, axis=0),
    )
    z, p = mechanism.outcome(trial)
    return z[:, server], p[:, server]


def numeric_threshold_integral(
    mechanism: Mechanism, setting: AuctionSetting, profiles: Profiles, row: int, server: int
) -> tuple[float, float]:
    """(trapezoid ∫_{b_s}^{b̄} z_s dt on FINE points, its rigorous bound Δz·h/2 + ulps).

    For a non-increasing integrand the left and right Riemann sums bracket the integral, so the
    trapezoid rule is within half their difference, (z(b_s) − z(b̄))·h/2.
    """
    start = profiles.bids[row, server]
    t = np.linspace(start, setting.bid_high, FINE)
    z, _ = own_bid_sweep(mechanism, profiles, row, server, t)
    h = t[1] - t[0]
    trapezoid = float(h * (z.sum() - 0.5 * (z[0] + z[-1])))
    return trapezoid, float((z[0] - z[-1]) * h / 2 + 1e-12 * setting.bid_range)


@pytest.fixture(scope="module", params=["single-3", "tbcim-small"])
def setting(request: pytest.FixtureRequest, single3, small_tbcim) -> AuctionSetting:
    return single3 if request.param == "single-3" else small_tbcim


# ----- monotone by construction --------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([0.5, 1.0, 3.0, 10.0]))
def test_allocation_non_increasing_in_own_bid_for_random_weights(
    setting: AuctionSetting, seed: int, scale: float
) -> None:
    model = make_model(setting, seed, scale)
    profiles = setting.sample(3, np.random.default_rng(seed))
    bids = np.linspace(setting.bid_low, setting.bid_high, GRID)
    for row in range(profiles.n_profiles):
        for server in range(setting.n_servers):
            z, p = own_bid_sweep(model, profiles, row, server, bids)
            assert np.all(np.diff(z) <= 1e-15), "z_s rose with the own bid"
            assert np.all((z >= 0) & (z <= 1))
            # IR by construction at every (bid = cost) point: p_s ≥ z_s·b_s.
            assert np.all(p - z * bids >= -1e-15)
    z, _ = model.outcome(profiles)
    if not setting.multi_winner:
        assert np.all(z.sum(axis=1) < 1.0)  # the rest is "buy nothing"


def test_lattice_integral_matches_quadrature_of_its_own_logit() -> None:
    """(X5) against scipy-free numpy: the lattice formulas alone, steep and flat slopes."""
    top = torch.tensor([2.0, -1.0, 30.0], dtype=torch.float64)
    slopes = torch.tensor(
        [[0.01, 5.0, 400.0, 1.0], [3.0, 3.0, 3.0, 3.0], [1e3, 1e-2, 50.0, 7.0]],
        dtype=torch.float64,
    )
    tau = torch.tensor([0.0, 0.37, 0.9], dtype=torch.float64)
    offset = torch.tensor([0.0, 0.5, -2.0], dtype=torch.float64)
    integral, bound = lattice_integral(top, slopes, tau, offset)
    for i in range(3):
        t = np.linspace(float(tau[i]), 1.0, 400_001)
        logit = lattice_logit(
            top[i].expand(t.size), slopes[i].expand(t.size, -1), torch.as_tensor(t)
        ).numpy()
        z = 1 / (1 + np.exp(-(logit - float(offset[i]))))
        h = t[1] - t[0]
        reference = h * (z.sum() - 0.5 * (z[0] + z[-1]))
        assert abs(float(integral[i]) - reference) <= (z[0] - z[-1]) * h / 2 + 1e-12
        assert 0 < float(bound[i]) < 1e-10


# ----- threshold payments (X1) ---------------------------------------------------------------


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1.0, 10.0]))
def test_payments_equal_the_threshold_integral_by_a_fine_numpy_sum(
    setting: AuctionSetting, seed: int, scale: float
) -> None:
    model = make_model(setting, seed, scale)
    profiles = setting.sample(2, np.random.default_rng(seed + 1))
    z, p = model.outcome(profiles)
    bound = model.payment_error_bound(profiles)
    for row in range(profiles.n_profiles):
        for server in range(setting.n_servers):
            reference, tolerance = numeric_threshold_integral(model, setting, profiles, row, server)
            rent = p[row, server] - z[row, server] * profiles.bids[row, server]
            assert abs(rent - reference) <= tolerance + bound[row, server]


def test_regret_evaluator_finds_no_gain_above_the_quadrature_bound(
    setting: AuctionSetting,
) -> None:
    model = make_model(setting, seed=3, scale=3.0)
    profiles = setting.sample(40, np.random.default_rng(4))
    regret = regret_per_profile(
        model, profiles, setting, grid_points=101, refine_steps=5, torch_outcome=model.torch_outcome
    )
    # A misreport b' gains at most e(b') − e(c) ≤ 2·max|e|, e the payment's rounding error.
    bound = model.payment_error_bound(profiles).max()
    assert regret.max() <= 2 * bound
    assert bound < 1e-12 * setting.bid_range


def test_torch_outcome_matches_outcome_and_has_bid_gradients(setting: AuctionSetting) -> None:
    model = make_model(setting, seed=5)
    profiles = setting.sample(6, np.random.default_rng(6))
    bids = torch.as_tensor(profiles.bids).requires_grad_(True)
    z, p = model.torch_outcome(
        bids, torch.as_tensor(profiles.data_sizes), torch.as_tensor(profiles.emds)
    )
    z_np, p_np = model.outcome(profiles)
    np.testing.assert_allclose(z.detach().numpy(), z_np, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.detach().numpy(), p_np, rtol=0, atol=1e-15)
    (grad,) = torch.autograd.grad(p.sum(), bids)
    assert torch.all(torch.isfinite(grad))
    assert isinstance(model, Mechanism)


# ----- capped VCG (V4), checked with the same independent integral ---------------------------


def test_capped_vcg_pays_the_threshold_within_the_bid_space(small_tbcim) -> None:
    capped, plain = CappedVCG(small_tbcim), VCG(small_tbcim)
    profiles = small_tbcim.sample(300, np.random.default_rng(8))
    z, p = capped.outcome(profiles)
    z_plain, p_plain = plain.outcome(profiles)
    np.testing.assert_array_equal(z, z_plain)
    assert np.all(p <= z * small_tbcim.bid_high + 1e-15)
    assert np.any(p_plain > small_tbcim.bid_high), "the sample should need the cap"
    for row in range(6):
        for server in range(small_tbcim.n_servers):
            reference, tolerance = numeric_threshold_integral(
                capped, small_tbcim, profiles, row, server
            )
            rent = p[row, server] - z[row, server] * profiles.bids[row, server]
            assert abs(rent - reference) <= tolerance
    regret = regret_per_profile(capped, profiles.take(slice(0, 30)), small_tbcim, grid_points=61)
    assert regret.max() <= 1e-12


# ----- training: single-1 approaches Myerson's posted price 0.5 ------------------------------


def test_single1_learns_the_posted_price_one_half() -> None:
    setting = get_setting("single-1")
    config = ExactConfig(
        hidden_width=8, segments=16, n_train=4_000, n_val=2_000, batch_size=200, epochs=6, lr=2e-2
    )
    result = train_exact(setting, config, seed=0, log=None)
    model = result.model
    # Exact expected figures over costs U[0, 1]: a 20,001-point midpoint grid of costs.
    costs = (np.arange(20_001) + 0.5) / 20_001
    profiles = Profiles(costs[:, None], np.zeros((costs.size, 1)), np.zeros((costs.size, 1)))
    z, p = model.outcome(profiles)
    buyer_utility = float(np.mean(z[:, 0] - p[:, 0]))
    assert abs(buyer_utility - 0.25) <= 0.01 * 0.25
    # The allocation is (close to) the posted price 1/2: buy below, not above.
    crossing = costs[np.argmin(np.abs(z[:, 0] - 0.5))]
    assert abs(crossing - 0.5) < 0.03
    low = costs < 0.4
    assert np.all(np.abs(p[low, 0] / z[low, 0] - 0.5) < 0.03)  # paid ≈ the price per unit
    assert result.selected_epoch >= 1 and len(result.history) == config.epochs


def test_training_is_deterministic_and_model_files_round_trip(tmp_path: Path) -> None:
    setting = get_setting("single-2")
    first = train_exact(setting, EXACT_PRESETS["smoke"], seed=4, log=None)
    second = train_exact(setting, EXACT_PRESETS["smoke"], seed=4, log=None)
    theirs = second.model.state_dict()
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, theirs[key])
    path = save_exact_result(tmp_path / "m.pt", first)
    profiles = setting.sample(50, np.random.default_rng(0))
    for model, meta in (load_exact_model(path), load_learned(path)):
        np.testing.assert_array_equal(model.outcome(profiles)[1], first.model.outcome(profiles)[1])
        assert meta["seed"] == 4 and meta["config"] == EXACT_PRESETS["smoke"]
        assert meta["mechanism"] == "ranet-exact"
    with pytest.raises(ConfigError, match="trained for setting 'single-2', not 'single-3'"):
        load_exact_model(path, get_setting("single-3"))
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else/1"}, other)
    with pytest.raises(ConfigError, match="unknown model format"):
        load_learned(other)
    with pytest.raises(ConfigError, match="not a RANet-exact model file"):
        load_exact_model(other)
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(ConfigError, match="not a readable model file"):
        load_learned(tmp_path / "junk.pt")
    with pytest.raises(ConfigError, match="no such file"):
        load_learned(tmp_path / "missing.pt")


# ----- configuration errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"hidden_widht": 8}, "train.hidden_widht"),
        ({"segments": 0}, "train.segments"),
        ({"segments": 2.5}, "train.segments"),
        ({"slope_scale": -1.0}, "train.slope_scale"),
        ({"lr": 0.0}, "train.lr"),
        ({"lr_final_factor": 2.0}, "train.lr_final_factor"),
        ({"patience": -1}, "train.patience"),
        ({"batch_size": 50_000, "n_train": 1_000}, "train.batch_size"),
    ],
)
def test_bad_training_options_name_the_dotted_key(values: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err, keyed("train"):
        exact_config_from_mapping(values, exact_preset("quick"))
    assert err.value.field == field


def test_bad_constructor_arguments_and_registry_errors(single3) -> None:
    with pytest.raises(ConfigError, match="segments"):
        ExactRANet(single3, (8,), 0)
    with pytest.raises(ConfigError, match="hidden"):
        ExactRANet(single3, ())
    with pytest.raises(ConfigError, match="slope_scale"):
        ExactRANet(single3, (8,), 4, float("inf"))
    with pytest.raises(ConfigError, match="unknown ranet-exact preset"):
        exact_preset("paper")
    with pytest.raises(ConfigError, match="has no preset 'paper'"):
        training_config("ranet-exact", {}, "paper")
    with pytest.raises(ConfigError, match="unknown learner"):
        training_config("regretnet", {}, "quick")
    model = make_model(single3, 0)
    with pytest.raises(ConfigError, match="expected shape"):
        model(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4))
    bad = Profiles(np.full((1, 3), 2.0), np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="outside the bid space"):
        model.outcome(bad)
    assert replace(EXACT_PRESETS["quick"]).to_dict()["segments"] == 16


# ----- command line ----------------------------------------------------------------------------


def test_cli_trains_and_evaluates_ranet_exact(tmp_path: Path, capsys) -> None:
    from tbcim.cli import main

    model = str(tmp_path / "m.pt")
    train = ["auction", "train", "--mechanism", "ranet-exact", "--setting", "single-2"]
    assert main([*train, "--preset", "smoke", "--out", model]) == 0
    result = str(tmp_path / "e.json")
    fast = ["--samples", "30", "--grid-points", "11", "--refine-steps", "2"]
    assert main(["auction", "eval", "--model", model, *fast, "--json", result]) == 0
    report = json.loads(Path(result).read_text())
    assert report["mechanism"] == "ranet-exact" and report["regret_max"] < 1e-12
    assert report["monotone"] and report["ir_violation_rate"] == 0.0
    capsys.readouterr()
    assert main([*train, "--preset", "paper", "--out", model]) == 2
    assert "has no preset 'paper'" in capsys.readouterr().err
    ckpt = ["--checkpoint", str(tmp_path / "c.ckpt")]
    assert main([*train, "--preset", "smoke", *ckpt, "--out", model]) == 2
    assert "ranet-exact trains in minutes and has no checkpoints" in capsys.readouterr().err


def test_registry_builds_analytic_mechanisms_by_name(single3, small_tbcim) -> None:
    from tbcim.auction.registry import (
        ANALYTIC,
        DEFAULT_LEARNED,
        LEARNED,
        analytic_mechanism,
    )

    assert DEFAULT_LEARNED in LEARNED
    for name in ANALYTIC:
        setting = small_tbcim if name == "capped-vcg" else single3
        mechanism = analytic_mechanism(name, setting)
        assert mechanism.name == name and isinstance(mechanism, Mechanism)
    with pytest.raises(ConfigError, match="is learned: load it from a model file"):
        analytic_mechanism("ranet-exact", single3)
    with pytest.raises(ConfigError, match="unknown mechanism 'vickrey'"):
        analytic_mechanism("vickrey", single3)
