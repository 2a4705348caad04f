"""RANet-exact: the learned reverse auction that is truthful by construction (issue 12)."""

from tbcim.auction.ranet_exact.checkpoint import (
    EXACT_MODEL_FORMAT,
    load_exact_model,
    save_exact_result,
)
from tbcim.auction.ranet_exact.config import (
    EXACT_PRESETS,
    ExactConfig,
    exact_config_from_mapping,
    exact_preset,
)
from tbcim.auction.ranet_exact.nets import ExactRANet
from tbcim.auction.ranet_exact.trainer import ExactTrainResult, train_exact

__all__ = [
    "EXACT_MODEL_FORMAT",
    "EXACT_PRESETS",
    "ExactConfig",
    "ExactRANet",
    "ExactTrainResult",
    "exact_config_from_mapping",
    "exact_preset",
    "load_exact_model",
    "save_exact_result",
    "train_exact",
]
