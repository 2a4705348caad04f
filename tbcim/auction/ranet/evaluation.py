"""Held-out test profiles for evaluating a trained learner.

The test profiles come from a random stream that training never touches (training draws its
profiles from ``default_rng(seed)``; the test set from ``default_rng([TEST_STREAM, seed])``).
:func:`tbcim.auction.registry.evaluate_learned` scores either learner and the baselines on them.
"""

from __future__ import annotations

import numpy as np

from tbcim.auction.mechanism import Profiles
from tbcim.auction.settings import AuctionSetting

#: Entropy word that separates the test stream from every training stream.
TEST_STREAM = 0x7E57


def held_out_profiles(setting: AuctionSetting, n: int, seed: int = 0) -> Profiles:
    """``n`` test profiles of ``setting``, disjoint in randomness from any training run."""
    return setting.sample(n, np.random.default_rng([TEST_STREAM, seed]))
