"""The ``[fl]`` table: everything the FL part of a run needs (section V-A defaults).

Parsed by the shared reader (:func:`tbcim.configfile.dataclass_from_table`): unknown keys and
wrong types are reported by dotted key (``fl.alpah``), range errors by the dataclass itself
(``fl.alpha: the Dirichlet concentration must be > 0``).

Paper values: δ1 = 5 local epochs, η = 0.01, δg = 100 global rounds. The batch size, α and the
reference mixture are not given in the paper; the defaults are ours (docs/fl.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tbcim.configfile import dataclass_from_table
from tbcim.errors import ConfigError

DATASET_NAMES = ("digits", "cifar10")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"fl.{name}", f"must be a positive integer, got {value!r}")


def _fraction(name: str, value: float, low_open: bool, high_open: bool) -> None:
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (np.isfinite(value) and low_ok and high_ok):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ConfigError(f"fl.{name}", f"must lie in {lo}0, 1{hi}, got {value}")


@dataclass(frozen=True)
class FLConfig:
    """The FL part of a run. Every field is a key of the ``[fl]`` table."""

    dataset: str = "digits"
    data_dir: str | None = None
    model: str | None = None  # None: the dataset's default (mlp for digits, cnn for cifar10)
    partition: str = "dirichlet"
    alpha: float = 0.5
    min_samples: int = 10
    task_concentration: float = 2.0
    reference_uniform_weight: float = 0.5
    local_epochs: int = 5  # δ1
    lr: float = 0.01  # η
    global_rounds: int = 100  # δg
    batch_size: int = 10
    attack: str = "none"
    attack_fraction: float = 0.2
    attack_start_round: int = 0
    attack_scale: float = 10.0
    copy_noise: float = 0.0
    val_fraction: float = 0.1
    test_fraction: float = 0.25
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        from tbcim.fl.attacks import get_attack
        from tbcim.fl.client import LocalTraining
        from tbcim.fl.model import check_model_name
        from tbcim.fl.partitions import PARTITIONS

        if self.dataset not in DATASET_NAMES:
            raise ConfigError(
                "fl.dataset", f"unknown dataset {self.dataset!r}; known: {list(DATASET_NAMES)}"
            )
        if self.dataset == "cifar10" and not self.data_dir:
            raise ConfigError("fl.data_dir", "cifar10 is read from a local folder; set data_dir")
        if self.model is not None:
            check_model_name(self.model)
        if self.partition not in PARTITIONS:
            raise ConfigError(
                "fl.partition", f"unknown partition {self.partition!r}; known: {list(PARTITIONS)}"
            )
        if not np.isfinite(self.alpha) or self.alpha <= 0:
            raise ConfigError(
                "fl.alpha", f"the Dirichlet concentration must be > 0, got {self.alpha}"
            )
        for name in ("min_samples", "global_rounds", "threads"):
            _positive_int(name, getattr(self, name))
        if not np.isfinite(self.task_concentration) or self.task_concentration <= 0:
            raise ConfigError(
                "fl.task_concentration", f"must be > 0, got {self.task_concentration}"
            )
        _fraction("reference_uniform_weight", self.reference_uniform_weight, False, False)
        LocalTraining(self.local_epochs, self.lr, self.batch_size)
        get_attack(self.attack)
        _fraction("attack_fraction", self.attack_fraction, False, False)
        if isinstance(self.attack_start_round, bool) or self.attack_start_round < 0:
            raise ConfigError(
                "fl.attack_start_round", f"must be >= 0, got {self.attack_start_round}"
            )
        if not np.isfinite(self.attack_scale):
            raise ConfigError("fl.attack_scale", f"must be finite, got {self.attack_scale}")
        if not np.isfinite(self.copy_noise) or self.copy_noise < 0:
            raise ConfigError("fl.copy_noise", f"must be >= 0, got {self.copy_noise}")
        _fraction("val_fraction", self.val_fraction, True, True)
        _fraction("test_fraction", self.test_fraction, True, True)
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("fl.test_fraction", "val_fraction + test_fraction must be < 1")
        if isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError("fl.seed", f"must be a non-negative integer, got {self.seed!r}")

    @property
    def model_name(self) -> str:
        """The model to train: ``model``, or the dataset's default."""
        from tbcim.fl.model import DEFAULT_MODEL

        return self.model if self.model is not None else DEFAULT_MODEL[self.dataset]

    @classmethod
    def from_dict(cls, raw: Any, table: str = "fl") -> FLConfig:
        """Parse the ``[fl]`` table (a mapping; None = all defaults) through the shared reader."""
        return dataclass_from_table(cls, raw, table)
