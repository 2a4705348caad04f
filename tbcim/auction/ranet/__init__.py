"""RANet: the learned reverse auction of section III (networks, Algorithm 1, model files)."""

from tbcim.auction.ranet.checkpoint import load_model, save_model, save_result
from tbcim.auction.ranet.config import PRESETS, TrainConfig, preset, read_config_file
from tbcim.auction.ranet.nets import RANet
from tbcim.auction.ranet.trainer import Trainer, TrainResult, train

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
