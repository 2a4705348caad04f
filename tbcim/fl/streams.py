"""Independent random streams keyed by (purpose, seed, ED, round).

Every random draw of an FL run comes from a stream derived with :class:`numpy.random.SeedSequence`
from a tuple of keys, never from a shared generator, so a client's result does not depend on
the order in which a runner calls the clients (or on which worker runs them).
"""

from __future__ import annotations

import numpy as np
import torch

# Purposes: the first key of every stream, so that no two purposes share a stream.
MODEL_INIT = 0
LOCAL_TRAINING = 1
ATTACK = 2
PARTITION = 3
REFERENCE = 4
ATTACKERS = 5
TASK_TEST = 6
TASK_VALIDATION = 7


def derive_seed(*keys: int) -> int:
    """A 63-bit seed determined by the keys (non-negative integers)."""
    if any(isinstance(k, bool) or int(k) < 0 for k in keys):
        raise ValueError(f"stream keys must be non-negative integers, got {keys}")
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def numpy_rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*keys))


def torch_generator(*keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*keys))
