"""Reverse-auction mechanisms by name, for the CLI, the benchmarks and the market.

* Analytic mechanisms are built from a setting: ``myerson`` (single winner only), ``vcg``,
  ``capped-vcg``, ``greedy``, ``random``, ``no-incentive`` (``docs/auction-mechanisms.md``).
* Learned mechanisms are trained, saved to a model file and loaded back:
  ``ranet`` (regret-penalised, Algorithm 1, ``tbcim.auction.ranet``) and ``ranet-exact``
  (truthful by construction, ``tbcim.auction.ranet_exact``). :func:`load_learned` reads either
  file by its format tag, so every command that takes ``--model`` accepts both.

:data:`DEFAULT_LEARNED` is the learner the market uses unless told otherwise; the README's
auction section gives the measured reasons (issue 12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tbcim.auction.baselines import Greedy, NoIncentive, RandomMechanism
from tbcim.auction.evaluate import evaluate
from tbcim.auction.mechanism import Mechanism
from tbcim.auction.myerson import Myerson
from tbcim.auction.ranet import load_model, preset, save_result, train
from tbcim.auction.ranet.checkpoint import MODEL_FORMAT
from tbcim.auction.ranet.config import PRESETS, config_from_mapping
from tbcim.auction.ranet.evaluation import held_out_profiles
from tbcim.auction.ranet.nets import RANet
from tbcim.auction.ranet.trainer import TrainResult
from tbcim.auction.ranet_exact import (
    EXACT_MODEL_FORMAT,
    EXACT_PRESETS,
    ExactRANet,
    ExactTrainResult,
    exact_config_from_mapping,
    exact_preset,
    load_exact_model,
    save_exact_result,
    train_exact,
)
from tbcim.auction.ranet_exact.checkpoint import read_model_state
from tbcim.auction.settings import AuctionSetting
from tbcim.auction.vcg import VCG, CappedVCG
from tbcim.errors import ConfigError

#: The analytic mechanisms, each built from a setting.
ANALYTIC: dict[str, Callable[[AuctionSetting], Mechanism]] = {
    "myerson": Myerson,
    "vcg": VCG,
    "capped-vcg": CappedVCG,
    "greedy": Greedy,
    "random": RandomMechanism,
    "no-incentive": NoIncentive,
}
#: The learned mechanisms (trained, then read from a model file).
LEARNED = ("ranet", "ranet-exact")
MECHANISM_NAMES = tuple(ANALYTIC) + LEARNED
#: The market's learner by default (README, section "auction": measured on the test seeds).
DEFAULT_LEARNED = "ranet-exact"

LearnedModel = RANet | ExactRANet
AnyTrainResult = TrainResult | ExactTrainResult


@dataclass(frozen=True)
class Learner:
    """How one learner is configured, trained and saved."""

    name: str
    presets: tuple[str, ...]
    model_format: str


LEARNERS = {
    "ranet": Learner("ranet", tuple(sorted(PRESETS)), MODEL_FORMAT),
    "ranet-exact": Learner("ranet-exact", tuple(sorted(EXACT_PRESETS)), EXACT_MODEL_FORMAT),
}


def check_learner(name: str) -> Learner:
    """The learner called ``name``; anything else is a ConfigError on ``mechanism``."""
    if name not in LEARNERS:
        raise ConfigError("mechanism", f"unknown learner {name!r}; choose one of {LEARNED}")
    return LEARNERS[name]


def analytic_mechanism(name: str, setting: AuctionSetting) -> Mechanism:
    """The analytic mechanism ``name`` for ``setting`` (a learned name needs a model file)."""
    if name in LEARNERS:
        raise ConfigError("mechanism", f"{name!r} is learned: load it from a model file")
    if name not in ANALYTIC:
        raise ConfigError(
            "mechanism", f"unknown mechanism {name!r}; choose one of {MECHANISM_NAMES}"
        )
    return ANALYTIC[name](setting)


def training_config(name: str, options: dict[str, Any], preset_name: str) -> Any:
    """The learner's training config: preset ``preset_name`` with a ``[train]`` table over it."""
    learner = check_learner(name)
    if preset_name not in learner.presets:
        raise ConfigError(
            "preset", f"{name} has no preset {preset_name!r}; choose from {learner.presets}"
        )
    if name == "ranet":
        return config_from_mapping(options, preset(preset_name))
    return exact_config_from_mapping(options, exact_preset(preset_name))


def train_learned(
    name: str,
    setting: AuctionSetting,
    config: Any,
    seed: int = 0,
    *,
    log: Callable[[str], None] | None = print,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
) -> AnyTrainResult:
    """Train learner ``name`` (``config`` from :func:`training_config`)."""
    check_learner(name)
    if name == "ranet":
        return train(setting, config, seed, log=log, checkpoint_path=checkpoint_path, resume=resume)
    if checkpoint_path is not None or resume:
        raise ConfigError("checkpoint", "ranet-exact trains in minutes and has no checkpoints")
    return train_exact(setting, config, seed, log=log)


def save_learned(
    path: str | Path, result: AnyTrainResult, setting_spec: dict[str, Any] | None = None
) -> Path:
    """Save a training result of either learner."""
    if isinstance(result, ExactTrainResult):
        return save_exact_result(path, result, setting_spec)
    return save_result(path, result, setting_spec)


def load_learned(
    path: str | Path, setting: AuctionSetting | None = None
) -> tuple[LearnedModel, dict[str, Any]]:
    """Load a model file of either learner by its format tag; returns (model, metadata)."""
    tag = read_model_state(path)["format"]
    if tag == EXACT_MODEL_FORMAT:
        return load_exact_model(path, setting)
    if tag == MODEL_FORMAT:
        model, meta = load_model(path, setting)
        return model, meta
    raise ConfigError("model", f"{path} has the unknown model format {tag!r}")


def evaluate_learned(
    model: LearnedModel,
    n_samples: int = 10_000,
    seed: int = 0,
    *,
    baselines: bool = True,
    **regret_kw: Any,
) -> dict[str, Any]:
    """:func:`tbcim.auction.evaluate.evaluate` of a learned model on held-out profiles of test
    seed ``seed`` (stream ``[TEST_STREAM, seed]``, never used by training), with the gradient
    refinement through the model's ``torch_outcome``."""
    profiles = held_out_profiles(model.setting, n_samples, seed)
    result = evaluate(
        model,
        model.setting,
        profiles,
        torch_outcome=model.torch_outcome,
        baselines=baselines,
        **regret_kw,
    )
    result["eval_seed"] = seed
    return result
