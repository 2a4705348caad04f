"""RANet: the learned reverse auction of section III (networks, Algorithm 1, model files).

The public names below are imported on first use (PEP 562), so that reading a preset or a run
config (:mod:`tbcim.auction.ranet.config`) does not import torch: the CLI stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tbcim.auction.ranet.checkpoint import load_model, save_model, save_result
    from tbcim.auction.ranet.config import PRESETS, TrainConfig, preset, read_config_file
    from tbcim.auction.ranet.nets import RANet
    from tbcim.auction.ranet.trainer import Trainer, TrainResult, train

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "load_model": "checkpoint",
    "save_model": "checkpoint",
    "save_result": "checkpoint",
    "PRESETS": "config",
    "TrainConfig": "config",
    "preset": "config",
    "read_config_file": "config",
    "RANet": "nets",
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "train": "trainer",
}

__all__ = [
    "PRESETS",
    "RANet",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "load_model",
    "preset",
    "read_config_file",
    "save_model",
    "save_result",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
