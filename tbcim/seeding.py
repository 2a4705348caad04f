"""One seed drives every random choice of a run."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch (if imported) and return a numpy Generator for the run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency, kept for scripts
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)
