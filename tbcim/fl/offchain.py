"""FedAvg rounds in numpy, with no chain: the reference the on-chain loop is checked against.

    w_{t+1} = w_t + Σ_k n_k Δ_k / Σ_k n_k          (FedAvg, weighted by data size d_k)

:func:`run_offchain` drives a task's clients in-process (:meth:`FLTask.submissions`): every
participating ED computes its honest delta from the current global model; attackers then turn
theirs into their submission (a copier reads the honest EDs' current updates);
:func:`~tbcim.fl.client.screen_updates` sets malformed updates aside; the rest are averaged.
There is **no verification** here (that is the contract's job), so this is the "no defence"
baseline and, without attackers, the off-chain "Ideal" of Fig. 11. :func:`fedavg` is the numpy
FedAvg the on-chain result must match within one quantisation step.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tbcim.errors import ConfigError
from tbcim.fl.client import screen_updates
from tbcim.fl.task import FLTask

Vector = NDArray[np.float64]


def fedavg(
    global_params: ArrayLike, updates: Mapping[int, ArrayLike], weights: Mapping[int, float]
) -> Vector:
    """w + Σ n_k Δ_k / Σ n_k over the EDs in ``updates`` (each needs a positive weight)."""
    w = np.asarray(global_params, dtype=np.float64)
    if not updates:
        raise ConfigError("updates", "FedAvg needs at least one update")
    missing = [ed for ed in updates if ed not in weights]
    if missing:
        raise ConfigError("weights", f"no data size for ED(s) {missing}")
    n = np.array([float(weights[ed]) for ed in updates])
    if np.any(~np.isfinite(n)) or np.any(n <= 0):
        raise ConfigError("weights", "data sizes must be positive and finite")
    stacked = np.stack([np.asarray(u, dtype=np.float64) for u in updates.values()])
    if stacked.shape[1:] != w.shape:
        raise ConfigError(
            "updates", f"shape {stacked.shape[1:]} does not match the model {w.shape}"
        )
    return w + (n[:, None] * stacked).sum(axis=0) / n.sum()


@dataclass(frozen=True)
class RoundRecord:
    """One off-chain round: the task accuracy/loss after it and who was averaged or set aside."""

    round: int
    accuracy: float
    loss: float
    averaged: tuple[int, ...]
    rejected: dict[int, str]


def run_offchain(
    task: FLTask,
    rounds: int,
    participants: Callable[[int], Collection[int]] | None = None,
    params: Vector | None = None,
    on_round: Callable[[RoundRecord], None] | None = None,
) -> tuple[Vector, list[RoundRecord]]:
    """``rounds`` FedAvg rounds from ``params`` (default: the task's initial model).

    ``participants(round)`` names the EDs that take part in a round (default: all), e.g. to drop
    the EDs of a failed ES; a round with no valid update keeps the model.
    """
    everyone = range(len(task.clients))
    w = task.initial_params.copy() if params is None else np.asarray(params, dtype=np.float64)
    sizes = {ed: float(n) for ed, n in enumerate(task.data_sizes)}
    records = []
    for r in range(rounds):
        eds = everyone if participants is None else participants(r)
        screened = screen_updates(task.submissions(w, r, eds), task.num_params)
        if screened.valid:
            w = fedavg(w, screened.valid, sizes)
        ev = task.evaluate(w)
        rec = RoundRecord(r, ev.accuracy, ev.loss, tuple(sorted(screened.valid)), screened.rejected)
        records.append(rec)
        if on_round is not None:
            on_round(rec)
    return w, records
