"""Algorithm 1: a short run learns, the Lagrangian updates follow (6)–(7), runs are reproducible
and resumable, and misreports climb the ES utility.

The learning check is scored by the project's grid regret evaluator on held-out profiles,
independently of the training loss.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from tbcim.auction.evaluate import evaluate
from tbcim.auction.ranet import TrainConfig, Trainer, preset, train
from tbcim.auction.ranet.evaluation import held_out_profiles
from tbcim.auction.settings import AuctionSetting, get_setting
from tbcim.errors import ConfigError

TINY = TrainConfig(
    hidden_width=16,
    n_train=400,
    n_val=50,
    batch_size=100,
    epochs=2,
    misreport_steps=2,
    lambda_every=2,
    rho_every=3,
    rho_increment=1.0,
    rho_max=5.0,
    val_grid=11,
)


@pytest.fixture(scope="module")
def single2() -> AuctionSetting:
    return get_setting("single-2")


def test_short_training_lowers_regret_and_raises_buyer_utility(single2: AuctionSetting) -> None:
    config = replace(preset("smoke"), batch_size=200, epochs=30)  # 300 iterations
    trainer = Trainer(single2, config, seed=0, log=None)
    untrained = copy.deepcopy(trainer.model)
    result = trainer.run()
    profiles = held_out_profiles(single2, 500, seed=1)
    before, after = (
        evaluate(m, single2, profiles, baselines=False, grid_points=51, refine_steps=0)
        for m in (untrained, result.model)
    )
    assert after["regret_mean"] < 0.2 * before["regret_mean"]
    assert after["buyer_utility"] > before["buyer_utility"] + 0.1
    assert after["ir_violation_rate"] == 0.0
    # Learned, but honest about it: below Myerson's optimum + what the regret can buy.
    assert after["buyer_utility"] <= single2.optimal_buyer_utility + 10 * after["regret_mean"]


def test_lagrangian_updates_follow_the_schedule(single2: AuctionSetting) -> None:
    config = replace(TINY, lambda_init=2.0, lambda_every=2, rho_init=1.0, rho_every=3)
    trainer = Trainer(single2, config, seed=0, log=None)
    idx = torch.arange(100)
    lambdas, rhos = [trainer.lambdas.clone()], [trainer.rho]
    for t in range(1, 7):
        regret = trainer._step(idx)["regret"]
        expected = lambdas[-1] + rhos[-1] * regret if t % 2 == 0 else lambdas[-1]
        torch.testing.assert_close(trainer.lambdas, expected)
        lambdas.append(trainer.lambdas.clone())
        rhos.append(trainer.rho)
    assert rhos == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0]  # ρ += 1 every 3 iterations
    assert torch.all(lambdas[-1] > lambdas[0])


def test_misreport_ascent_and_grid_reseed_raise_the_es_utility(single2: AuctionSetting) -> None:
    trainer = Trainer(single2, replace(TINY, misreport_steps=5), seed=0, log=None)
    idx = torch.arange(100)
    batch = (trainer.bids[idx], trainer.data_sizes[idx], trainer.emds[idx])
    with torch.no_grad():
        start = trainer._misreport_utility(*batch, trainer.cache[idx])
    mis = trainer._optimise_misreports(idx, batch)
    with torch.no_grad():
        climbed = trainer._misreport_utility(*batch, mis)
    assert torch.all(climbed >= start - 1e-6) and climbed.mean() > start.mean()
    torch.testing.assert_close(trainer.cache[idx], mis)  # cached for the next visit
    grid = replace(TINY, misreport_grid=21)
    reseeded = Trainer(single2, grid, seed=0, log=None)._grid_reseed(batch, mis)
    with torch.no_grad():
        best = reseeded_u = trainer._misreport_utility(*batch, reseeded)
        for point in np.linspace(0, 1, 21):
            u = trainer._misreport_utility(*batch, torch.full_like(mis, float(point)))
            assert torch.all(reseeded_u >= u - 1e-6)
    assert torch.all(best >= climbed - 1e-6)


def test_same_seed_same_run_other_seed_other_run(single2: AuctionSetting) -> None:
    runs = [train(single2, TINY, seed, log=None) for seed in (3, 3, 4)]
    first, again, other = (r.model.state_dict() for r in runs)
    for key in first:
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    assert runs[0].history[-1]["buyer_utility"] == runs[1].history[-1]["buyer_utility"]
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_resuming_a_checkpoint_continues_exactly(single2: AuctionSetting, tmp_path) -> None:
    straight = Trainer(single2, TINY, seed=1, log=None)
    straight.run()
    half = Trainer(single2, replace(TINY, epochs=1), seed=1, log=None)
    half.run()
    path = tmp_path / "ckpt.pt"
    half.save_checkpoint(path)
    with pytest.raises(ConfigError, match="different config"):
        Trainer(single2, replace(TINY, lr=0.01), seed=1, log=None).load_checkpoint(path)
    resumed = Trainer(single2, TINY, seed=1, log=None)  # same run, one epoch more
    resumed.load_checkpoint(path)
    resumed.run()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    assert resumed.history[-1]["val_regret_mean"] == straight.history[-1]["val_regret_mean"]


def test_train_resumes_from_its_checkpoint_file(single2: AuctionSetting, tmp_path) -> None:
    path = tmp_path / "run.ckpt"
    first = train(single2, TINY, 2, log=None, checkpoint_path=path)
    lines: list[str] = []
    again = train(single2, TINY, 2, log=lines.append, checkpoint_path=path, resume=True)
    assert lines == [f"resumed from {path} at epoch 2"]  # nothing left to train
    assert again.history == first.history


def test_checkpoint_errors(single2: AuctionSetting, tmp_path) -> None:
    trainer = Trainer(single2, TINY, seed=0, log=None)
    trainer.run()
    path = tmp_path / "ckpt.pt"
    trainer.save_checkpoint(path)
    with pytest.raises(ConfigError, match="different seed"):
        Trainer(single2, TINY, seed=9, log=None).load_checkpoint(path)
    with pytest.raises(ConfigError, match="different setting"):
        Trainer(get_setting("single-1"), TINY, seed=0, log=None).load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"format": "x"}, other)
    with pytest.raises(ConfigError, match="not a RANet training checkpoint"):
        trainer.load_checkpoint(other)


def test_multi_winner_training_runs_and_keeps_ir(tmp_path) -> None:
    from tbcim.auction.settings import tbcim_setting

    setting = tbcim_setting(3, pool_size=400, pool_seed=7, name="tbcim-small")
    result = train(setting, TINY, 0, log=None)
    profiles = held_out_profiles(setting, 100)
    z, p = result.model.outcome(profiles)
    assert np.all(p - z * profiles.bids >= -1e-9)
    row = result.history[-1]
    assert np.isfinite(row["val_buyer_utility"]) and row["val_regret_mean"] >= 0


def test_model_selection_prefers_feasible_then_utility(single2: AuctionSetting) -> None:
    trainer = Trainer(single2, replace(TINY, target_regret=1e-3), seed=0, log=None)
    rows = [  # (val regret, val buyer utility) per epoch
        (5e-3, 0.45),  # infeasible: kept only while nothing better exists
        (2e-3, 0.40),  # infeasible but less regret: replaces epoch 1
        (9e-4, 0.30),  # first feasible epoch
        (4e-3, 0.60),  # infeasible, however high its utility
        (5e-4, 0.35),  # feasible and better
        (1e-4, 0.32),  # feasible, lower utility: not selected
    ]
    picks, stale = [], []
    for epoch, (regret, utility) in enumerate(rows, start=1):
        row = {"epoch": epoch, "val_regret_mean": regret, "val_buyer_utility": utility}
        trainer.history.append(row)
        picks.append(trainer._select(row))
        stale.append(trainer.stale)
    assert picks == [True, True, True, False, True, False]
    assert stale == [0, 0, 0, 0, 0, 1]  # only feasible, unselected epochs count for patience
    assert trainer.selected is not None and trainer.selected[0] == 5


def test_patience_waits_for_feasible_epochs(single2: AuctionSetting) -> None:
    never_feasible = replace(TINY, epochs=4, patience=1, target_regret=1e-12)
    assert len(train(single2, never_feasible, 0, log=None).history) == 4
    always_feasible = replace(TINY, epochs=6, patience=1, target_regret=1.0)
    lines: list[str] = []
    result = train(single2, always_feasible, 0, log=lines.append)
    assert len(result.history) < 6 and "early stop" in lines[-1]
