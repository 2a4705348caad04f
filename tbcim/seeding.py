"""One seed drives every random choice of a run."""

from __future__ import annotations

import random
import sys

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and (if the run uses it) torch; return a numpy Generator for the run.

    torch is seeded only when already imported, so runs that never touch it do not pay for
    importing it.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)
