"""RANet's networks, payments, misreport batching, model files and config validation.

Oracles: a numpy re-implementation of the forward pass from the saved weights, the IR identity
u_s = z_s·p̃_s·(b̄ − c_s) ≥ 0, and a loop of single deviations through ``outcome``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tbcim.auction.mechanism import Mechanism, Profiles
from tbcim.auction.ranet import RANet, TrainConfig, load_model, preset, read_config_file, save_model
from tbcim.auction.ranet.config import config_from_mapping
from tbcim.auction.ranet.nets import feature_ranges
from tbcim.auction.ranet.trainer import misreport_outcome
from tbcim.auction.settings import AuctionSetting, setting_from_dict
from tbcim.errors import ConfigError

SMALL_SPEC = {"base": "tbcim-3", "pool_size": 400, "pool_seed": 7, "name": "tbcim-small"}


def make_model(setting: AuctionSetting, seed: int = 0, width: int = 16) -> RANet:
    torch.manual_seed(seed)
    profiles = setting.sample(200, np.random.default_rng(seed))
    return RANet(setting, (width, width), *feature_ranges(profiles))


def numpy_forward(model: RANet, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: tanh MLPs, softmax (+ buy nothing) or sigmoid, IR-safe payment."""
    state = {k: v.double().numpy() for k, v in model.state_dict().items()}
    raw = np.stack([profiles.bids, profiles.data_sizes, profiles.emds], axis=-1)
    x = ((raw - state["feature_low"]) / state["feature_span"]).reshape(len(raw), -1)

    def mlp(prefix: str) -> np.ndarray:
        h = x
        n_linear = len([k for k in state if k.startswith(prefix) and k.endswith("weight")])
        for i in range(n_linear):
            h = h @ state[f"{prefix}.{2 * i}.weight"].T + state[f"{prefix}.{2 * i}.bias"]
            if i < n_linear - 1:
                h = np.tanh(h)
        return h

    logits = mlp("allocation_net")
    s = model.n_servers
    if model.setting.multi_winner:
        z = 1 / (1 + np.exp(-logits))
    else:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        z = (e / e.sum(axis=1, keepdims=True))[:, :s]
    score = 1 / (1 + np.exp(-mlp("payment_net")))
    b = profiles.bids
    return z, z * (b + score * (model.setting.bid_high - b))


@pytest.fixture(scope="module")
def small_setting() -> AuctionSetting:
    return setting_from_dict(dict(SMALL_SPEC))


def test_ranet_is_a_mechanism(single3: AuctionSetting) -> None:
    assert isinstance(make_model(single3), Mechanism)


@pytest.mark.parametrize("which", ["single", "multi"])
def test_forward_matches_numpy_reference(
    which: str, single3: AuctionSetting, small_setting: AuctionSetting
) -> None:
    setting = single3 if which == "single" else small_setting
    model = make_model(setting, seed=3)
    profiles = setting.sample(300, np.random.default_rng(1))
    z, p = model.outcome(profiles)
    z_ref, p_ref = numpy_forward(model, profiles)
    np.testing.assert_allclose(z, z_ref, atol=2e-6)
    np.testing.assert_allclose(p, p_ref, atol=2e-6)
    if which == "single":
        assert np.all(z.sum(axis=1) < 1.0)  # the buy-nothing option keeps some mass
    else:
        assert np.any(z.sum(axis=1) > 1.0)  # independent inclusion probabilities


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(2, 24), multi=st.booleans())
def test_payments_are_ir_and_bounded_by_construction(
    seed: int, width: int, multi: bool, single3: AuctionSetting, small_setting: AuctionSetting
) -> None:
    setting = small_setting if multi else single3
    model = make_model(setting, seed=seed, width=width)
    # Large random weights push the sigmoids/softmax to their extremes too.
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(1 + seed % 7)
    profiles = setting.sample(64, np.random.default_rng(seed))
    z, p = model.outcome(profiles)
    b = profiles.bids
    utility = p - z * b
    assert np.all(utility >= -1e-7 * setting.bid_range)  # truthful ES never loses (IR)
    assert np.all(p <= z * setting.bid_high + 1e-7 * setting.bid_range)  # at most b̄ per unit
    assert np.all((z >= 0) & (z <= 1))


def test_misreport_outcome_equals_single_deviations(single3: AuctionSetting) -> None:
    model = make_model(single3, seed=5)
    profiles = single3.sample(40, np.random.default_rng(2))
    mis = np.random.default_rng(3).uniform(0, 1, profiles.shape)
    tensors = [torch.as_tensor(a, dtype=torch.float32) for a in (profiles.bids, mis)]
    sizes = torch.as_tensor(profiles.data_sizes, dtype=torch.float32)
    emds = torch.as_tensor(profiles.emds, dtype=torch.float32)
    with torch.no_grad():
        z, p = misreport_outcome(model, tensors[0], sizes, emds, tensors[1])
    for s in range(3):
        bids = profiles.bids.copy()
        bids[:, s] = mis[:, s]
        z_ref, p_ref = model.outcome(profiles.with_bids(bids))
        np.testing.assert_allclose(z[:, s].numpy(), z_ref[:, s], atol=1e-6)
        np.testing.assert_allclose(p[:, s].numpy(), p_ref[:, s], atol=1e-6)


def test_constant_public_features_become_zero_inputs(single3: AuctionSetting) -> None:
    model = make_model(single3)  # single-S: d = θ = 0 everywhere
    assert torch.isinf(model.feature_span[1:]).all()
    profiles = single3.sample(5, np.random.default_rng(0))
    z, _ = model.outcome(profiles)
    assert np.all(np.isfinite(z))


# ----- bad input ---------------------------------------------------------------------------


def test_outcome_rejects_wrong_number_of_servers(single3: AuctionSetting) -> None:
    model = make_model(single3)
    four = Profiles(np.full((2, 4), 0.5), np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(ConfigError, match="edge servers"):
        model.outcome(four)
    with pytest.raises(ConfigError, match=r"bid: expected shape \(batch, 3\)"):
        model.torch_outcome(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="data_size"):
        model.torch_outcome(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="profiles"):
        model.torch_outcome(torch.zeros(2, 3), torch.zeros(1, 3), torch.zeros(2, 3))


def test_outcome_rejects_bids_outside_the_bid_space(single3: AuctionSetting) -> None:
    model = make_model(single3)
    for bad in (1.5, -0.1):
        bids = np.full((2, 3), 0.5)
        bids[1, 2] = bad
        with pytest.raises(ConfigError, match="outside the bid space"):
            model.outcome(Profiles(bids, np.zeros((2, 3)), np.zeros((2, 3))))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_bids_are_rejected(bad: float) -> None:
    bids = np.full((2, 3), 0.5)
    bids[0, 1] = bad
    with pytest.raises(ConfigError, match="NaN or infinite"):
        Profiles(bids, np.zeros((2, 3)), np.zeros((2, 3)))


def test_bad_architecture_is_rejected(single3: AuctionSetting) -> None:
    for hidden in ((), (0, 10)):
        with pytest.raises(ConfigError, match="hidden"):
            RANet(single3, hidden)


# ----- model files -------------------------------------------------------------------------


def test_saved_model_reloads_to_identical_outputs(tmp_path, small_setting) -> None:
    model = make_model(small_setting, seed=9)
    path = save_model(
        tmp_path / "m.pt", model, TrainConfig(), seed=4, setting_spec=dict(SMALL_SPEC)
    )
    loaded, meta = load_model(path)
    profiles = small_setting.sample(100, np.random.default_rng(5))
    for a, b in zip(model.outcome(profiles), loaded.outcome(profiles), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.setting.name == "tbcim-small" and loaded.setting.n_servers == 3
    assert meta["seed"] == 4 and meta["config"] == TrainConfig()


def test_model_from_another_setting_is_rejected(tmp_path, single3: AuctionSetting) -> None:
    path = save_model(tmp_path / "m.pt", make_model(single3), TrainConfig(), seed=0)
    other = setting_from_dict({"base": "single-5"})
    with pytest.raises(ConfigError, match="trained for setting 'single-3', not 'single-5'"):
        load_model(path, other)
    renamed_five = setting_from_dict({"base": "single-3", "n_servers": 5, "name": "single-3"})
    with pytest.raises(ConfigError, match="has 3 ESs but setting 'single-3' has 5"):
        load_model(path, renamed_five)
    wider = setting_from_dict({"base": "single-3", "bid_high": 2.0, "name": "single-3"})
    with pytest.raises(ConfigError, match="bid space"):
        load_model(path, wider)


def test_unreadable_model_files_are_rejected(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="not a readable RANet model"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something else"}, other)
    with pytest.raises(ConfigError, match="not a RANet model file"):
        load_model(other)


# ----- configs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden_width", 0),
        ("epochs", 1.5),
        ("batch_size", True),
        ("misreport_steps", -1),
        ("misreport_grid", 1),
        ("val_grid", 1),
        ("lr", 0.0),
        ("misreport_lr", float("inf")),
        ("lambda_init", -1.0),
        ("rho_increment", float("nan")),
        ("rho_max", 0.5),
        ("batch_size", 10**9),
        ("target_regret", "small"),
    ],
)
def test_bad_train_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_mapping({field: value}, TrainConfig())
    assert err.value.field == field


def test_unknown_preset_and_option() -> None:
    with pytest.raises(ConfigError, match="preset"):
        preset("huge")
    with pytest.raises(ConfigError, match="unknown key") as err:
        config_from_mapping({"epoch": 3}, TrainConfig())
    assert err.value.field == "epoch"


def test_config_file_tables(tmp_path) -> None:
    good = tmp_path / "run.toml"
    good.write_text("[setting]\npool_size = 500\n[train]\nepochs = 3\n")
    assert read_config_file(good) == ({"pool_size": 500}, {"epochs": 3})
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({"train": {"lr": 0.01}}))
    assert read_config_file(as_json) == ({}, {"lr": 0.01})
    cases = {
        "missing.toml": (None, "no such file"),
        "run.yaml": ("a: 1", "use a .toml or .json"),
        "broken.toml": ("[train\n", "cannot parse"),
        "extra.toml": ("[optimiser]\nlr = 1\n", "optimiser: unknown key"),
        "flat.toml": ("train = 3\n", "train: must be a table"),
        "list.json": ("[1, 2]", "top level must be a table"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_config_file(path)


def test_initial_price_score(single3: AuctionSetting) -> None:
    torch.manual_seed(0)
    model = RANet(single3, (8,), price_score_init=0.1)
    with torch.no_grad():
        model.payment_net[-1].weight.zero_()  # leave only the initial bias
    profiles = single3.sample(50, np.random.default_rng(0))
    z, p = model.outcome(profiles)
    b = profiles.bids
    np.testing.assert_allclose(p, z * (b + 0.1 * (1.0 - b)), atol=1e-6)
    for bad in (0.0, 1.0):
        with pytest.raises(ConfigError, match="price_score_init"):
            RANet(single3, (8,), price_score_init=bad)
        with pytest.raises(ConfigError, match="price_score_init"):
            config_from_mapping({"price_score_init": bad}, TrainConfig())
