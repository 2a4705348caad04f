"""An edge device (ED) as a plain object, and the checks an update passes before the chain.

A :class:`Client` holds its partition (images and labels) and a model of the task's
architecture; :meth:`Client.local_update` loads the global parameters, runs δ1 local epochs of
SGD with learning rate η (section V-A: δ1 = 5, η = 0.01) and returns the delta
``w_local − w_global``. Its batch order comes from the stream (LOCAL_TRAINING, seed, ED, round),
so a client gives the same delta whatever order a runner visits the clients in. There are no
globals: a distributed engine can run each client as a worker.

:func:`validate_update` is the gate between a client and the chain: wrong type, dtype or length,
NaN or ±inf, or a value outside the codec's int16 range each raise an :class:`UpdateError`
naming the ED. :func:`screen_updates` applies it to every ED of a round and sets the bad ones
aside with their reasons, so one bad ED never stops the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from tbcim.blockchain.codec import FixedPointCodec
from tbcim.errors import ConfigError
from tbcim.fl.attacks import flip_labels, get_attack
from tbcim.fl.model import build_model, count_params, get_params, set_params, to_tensors, train
from tbcim.fl.streams import LOCAL_TRAINING, torch_generator

Vector = NDArray[np.float64]


class UpdateError(ConfigError):
    """An ED's update cannot go to the chain; ``ed`` names the ED."""

    def __init__(self, ed: int, problem: str) -> None:
        super().__init__(f"update from ED {ed}", problem)
        self.ed = ed


def validate_update(
    update: object, num_params: int, ed: int, codec: FixedPointCodec | None = None
) -> Vector:
    """The update as a float64 vector, or an :class:`UpdateError` naming ED ``ed``."""
    if not isinstance(update, np.ndarray):
        raise UpdateError(ed, f"must be a numpy array, got {type(update).__name__}")
    if not np.issubdtype(update.dtype, np.floating):
        raise UpdateError(ed, f"must have a float dtype, got {update.dtype}")
    if update.shape != (num_params,):
        raise UpdateError(ed, f"must have shape ({num_params},), got {update.shape}")
    bad = np.flatnonzero(~np.isfinite(update))
    if bad.size:
        i = int(bad[0])
        raise UpdateError(ed, f"holds {bad.size} non-finite value(s), first {update[i]} at {i}")
    vec = update.astype(np.float64)
    if codec is not None:
        try:
            codec.quantize(vec, "update")  # the codec's own range check, rounding included
        except ConfigError as exc:
            raise UpdateError(ed, f"does not fit the codec: {exc.problem}") from exc
    return vec


@dataclass(frozen=True)
class Screened:
    """A round's updates after :func:`validate_update`: the valid ones, and why the rest failed."""

    valid: dict[int, Vector]
    rejected: dict[int, str]


def screen_updates(
    updates: Mapping[int, object], num_params: int, codec: FixedPointCodec | None = None
) -> Screened:
    """Validate every ED's update; a bad one is set aside with its reason, the rest go on."""
    valid: dict[int, Vector] = {}
    rejected: dict[int, str] = {}
    for ed, update in updates.items():
        try:
            valid[ed] = validate_update(update, num_params, ed, codec)
        except ConfigError as exc:
            rejected[ed] = str(exc)
    return Screened(valid=valid, rejected=rejected)


@dataclass(frozen=True)
class LocalTraining:
    """δ1 local epochs of SGD with learning rate η and mini-batches of ``batch_size``."""

    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 10

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                key = "local_epochs" if name == "epochs" else name
                raise ConfigError(f"fl.{key}", f"must be a positive integer, got {value!r}")
        if not np.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError("fl.lr", f"must be positive and finite, got {self.lr}")


class Client:
    """One ED: its data, a model of the task's architecture, and its local training step.

    ``attack``/``attack_start_round``: an ED whose attack poisons labels (``label_flip``) trains
    on flipped labels from that round on; update-level attacks are applied by an
    :class:`~tbcim.fl.attacks.Adversary` to the delta this client returns.
    """

    def __init__(
        self,
        ed: int,
        x: ArrayLike,
        y: ArrayLike,
        model: str,
        input_shape: tuple[int, ...],
        n_classes: int,
        training: LocalTraining | None = None,
        seed: int = 0,
        attack: str = "none",
        attack_start_round: int = 0,
    ) -> None:
        self.ed = ed
        self.seed = seed
        self.training = LocalTraining() if training is None else training
        self.n_classes = n_classes
        self.x, self.y = to_tensors(x, y)
        if self.x.shape[0] == 0 or self.x.shape[0] != self.y.shape[0]:
            raise ConfigError(f"ED {ed} data", "needs at least one sample and one label each")
        if tuple(self.x.shape[1:]) != tuple(input_shape):
            raise ConfigError(f"ED {ed} data", f"images {tuple(self.x.shape[1:])} ≠ {input_shape}")
        if int(self.y.min()) < 0 or int(self.y.max()) >= n_classes:
            raise ConfigError(f"ED {ed} data", f"labels must lie in 0..{n_classes - 1}")
        self.poison_from: int | None = None
        if get_attack(attack).poisons_labels:
            self.poison_from = attack_start_round
            self.y_poisoned = torch.from_numpy(flip_labels(self.y.numpy(), n_classes))
        self.model = build_model(model, tuple(input_shape), n_classes, seed)
        self.num_params = count_params(self.model)

    @property
    def data_size(self) -> int:
        """d_i: the number of samples this ED trains on (its FedAvg weight)."""
        return int(self.x.shape[0])

    def labels_at(self, round: int) -> NDArray[np.int64]:
        """The labels this ED trains on in ``round`` (flipped once a label-flip attack is on)."""
        return self._labels(round).numpy()

    def _labels(self, round: int) -> torch.Tensor:
        if self.poison_from is not None and round >= self.poison_from:
            return self.y_poisoned
        return self.y

    def local_update(self, global_params: ArrayLike, round: int) -> Vector:
        """δ1 epochs of SGD from ``global_params``; returns the delta (float64, same length)."""
        start = np.asarray(global_params, dtype=np.float64)
        set_params(self.model, start)
        start = get_params(self.model)  # as loaded (float32), so the delta is training alone
        gen = torch_generator(LOCAL_TRAINING, self.seed, self.ed, round)
        t = self.training
        train(self.model, self.x, self._labels(round), t.epochs, t.lr, t.batch_size, gen)
        return get_params(self.model) - start
