"""Saving and loading a trained RANet-exact (a ``torch.save`` dict read with weights_only=True).

The file holds the format tag, the setting name and spec (``{"base": NAME, **overrides}``), the
bid space, the architecture (hidden widths, lattice segments, slope scale), the weights and
normalisation buffers, the training config, seed, selected epoch, per-epoch history and training
time. Loading it for another setting, another number of ESs or a changed bid space is a
:class:`ConfigError`, as for RANet's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tbcim.auction.ranet.checkpoint import read_model_state
from tbcim.auction.ranet_exact.config import ExactConfig, exact_config_from_mapping
from tbcim.auction.ranet_exact.nets import ExactRANet
from tbcim.auction.ranet_exact.trainer import ExactTrainResult
from tbcim.auction.settings import AuctionSetting, setting_for_model
from tbcim.errors import ConfigError
from tbcim.results import save_torch

EXACT_MODEL_FORMAT = "tbcim-ranet-exact-model/1"


def save_exact_result(
    path: str | Path, result: ExactTrainResult, setting_spec: dict[str, Any] | None = None
) -> Path:
    """Write the selected model of a run with everything needed to rebuild it."""
    model = result.model
    return save_torch(
        path,
        {
            "format": EXACT_MODEL_FORMAT,
            "mechanism": model.name,
            "setting": model.setting.name,
            "setting_spec": setting_spec or {"base": model.setting.name},
            "n_servers": model.n_servers,
            "bid_space": [model.setting.bid_low, model.setting.bid_high],
            "hidden": list(model.hidden),
            "segments": model.segments,
            "slope_scale": model.slope_scale,
            "state_dict": model.state_dict(),
            "config": result.config.to_dict(),
            "seed": result.seed,
            "history": result.history,
            "selected_epoch": result.selected_epoch,
            "train_seconds": result.train_seconds,
        },
    )


def load_exact_model(
    path: str | Path, setting: AuctionSetting | None = None
) -> tuple[ExactRANet, dict[str, Any]]:
    """Rebuild a saved RANet-exact; returns (model in eval mode, metadata)."""
    state = read_model_state(path)
    if state["format"] != EXACT_MODEL_FORMAT:
        raise ConfigError("model", f"{path} is not a RANet-exact model file ({state['format']})")
    setting = setting_for_model(state, path, setting)
    model = ExactRANet(setting, state["hidden"], state["segments"], state["slope_scale"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    meta["config"] = exact_config_from_mapping(state["config"], ExactConfig())
    return model, meta
