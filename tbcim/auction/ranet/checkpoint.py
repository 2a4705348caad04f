"""Saving and loading a trained RANet with its training config and setting name.

A model file is a ``torch.save`` dict (read back with ``weights_only=True``: no pickled code) that
holds the format tag, the setting name and its spec (``{"base": NAME, **overrides}``, rebuilt with
:func:`tbcim.auction.settings.setting_from_dict`), the architecture, the network weights and
normalisation buffers, the training config, seed, selected epoch and per-epoch history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tbcim.auction.ranet.config import TrainConfig, config_from_mapping
from tbcim.auction.ranet.nets import RANet
from tbcim.auction.ranet.trainer import TrainResult
from tbcim.auction.settings import AuctionSetting, setting_for_model
from tbcim.errors import ConfigError
from tbcim.results import save_torch

MODEL_FORMAT = "tbcim-ranet-model/1"

#: The old name of :func:`tbcim.results.save_torch` (the one atomic writer), kept for callers.
atomic_torch_save = save_torch


def save_model(
    path: str | Path,
    model: RANet,
    config: TrainConfig,
    *,
    seed: int,
    setting_spec: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    selected_epoch: int | None = None,
    train_seconds: float | None = None,
) -> Path:
    """Write ``model`` with everything needed to rebuild it (see the module docstring)."""
    return save_torch(
        path,
        {
            "format": MODEL_FORMAT,
            "setting": model.setting.name,
            "setting_spec": setting_spec or {"base": model.setting.name},
            "n_servers": model.n_servers,
            "bid_space": [model.setting.bid_low, model.setting.bid_high],
            "hidden": list(model.hidden),
            "state_dict": model.state_dict(),
            "config": config.to_dict(),
            "seed": seed,
            "history": history or [],
            "selected_epoch": selected_epoch,
            "train_seconds": train_seconds,
        },
    )


def save_result(
    path: str | Path, result: TrainResult, setting_spec: dict[str, Any] | None = None
) -> Path:
    """Save the selected model of a training run with its config, seed and history."""
    return save_model(
        path,
        result.model,
        result.config,
        seed=result.seed,
        setting_spec=setting_spec,
        history=result.history,
        selected_epoch=result.selected_epoch,
        train_seconds=result.train_seconds,
    )


def read_model_state(path: str | Path, kind: str = "model file") -> dict[str, Any]:
    """The raw dict of a model file (any learner); unreadable files are ConfigErrors that call
    it a ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("model", f"no such file: {path}")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a corrupt file
        raise ConfigError("model", f"{path} is not a readable {kind}: {err}") from err
    if not isinstance(state, dict) or "format" not in state:
        raise ConfigError("model", f"{path} is not a tbcim model file (no format tag)")
    return state


def load_model(
    path: str | Path,
    setting: AuctionSetting | None = None,
) -> tuple[RANet, dict[str, Any]]:
    """Rebuild a saved RANet; returns (model in eval mode, metadata).

    ``setting`` defaults to the one rebuilt from the saved spec; passing one checks that the file
    was trained for it (a model of another setting or another number of ESs is an error).
    """
    state = read_model_state(path, "RANet model file")
    if state["format"] != MODEL_FORMAT:
        raise ConfigError("model", f"{path} is not a RANet model file ({MODEL_FORMAT})")
    setting = setting_for_model(state, path, setting)
    model = RANet(setting, state["hidden"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    meta["config"] = config_from_mapping(state["config"], TrainConfig())
    return model, meta
