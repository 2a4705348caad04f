"""Held-out evaluation of a trained RANet with the project's strong regret evaluator.

The test profiles come from a random stream that training never touches (training draws its
profiles from ``default_rng(seed)``; the test set from ``default_rng([TEST_STREAM, seed])``), and
:func:`tbcim.auction.evaluate.evaluate` scores RANet and the baselines on the same profiles:
dense grid + zoom + gradient refinement through RANet's ``torch_outcome`` (item 3 of issue 4).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbcim.auction.evaluate import evaluate
from tbcim.auction.mechanism import Profiles
from tbcim.auction.ranet.nets import RANet
from tbcim.auction.settings import AuctionSetting

#: Entropy word that separates the test stream from every training stream.
TEST_STREAM = 0x7E57


def held_out_profiles(setting: AuctionSetting, n: int, seed: int = 0) -> Profiles:
    """``n`` test profiles of ``setting``, disjoint in randomness from any training run."""
    return setting.sample(n, np.random.default_rng([TEST_STREAM, seed]))


def evaluate_ranet(
    model: RANet,
    n_samples: int = 10_000,
    seed: int = 0,
    *,
    baselines: bool = True,
    **regret_kw: Any,
) -> dict[str, Any]:
    """:func:`tbcim.auction.evaluate.evaluate` of ``model`` on held-out profiles."""
    profiles = held_out_profiles(model.setting, n_samples, seed)
    result = evaluate(
        model,
        model.setting,
        profiles,
        torch_outcome=model.torch_outcome,
        baselines=baselines,
        **regret_kw,
    )
    result["eval_seed"] = seed
    return result
