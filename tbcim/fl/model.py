"""Small models that travel on chain, with ``train`` and ``evaluate`` (TBCIM section V-A).

An update travels as int16 fixed-point lanes, 16 per 256-bit word
(:mod:`tbcim.blockchain.codec`), so the parameter count sets the calldata of every
submission: ``ceil(P/16)`` words of 32 bytes.

=========  ==========================================================  ========  =====
name       layers                                                      params    words
=========  ==========================================================  ========  =====
``mlp``    digits: flatten 64 → 32 ReLU → 10                           2,410     151
``cnn``    CIFAR-10: 3×[conv3×3 → ReLU → maxpool2] (16, 32, 32          47,818    2,989
           channels) → 512 → 64 ReLU → 10
=========  ==========================================================  ========  =====

(:func:`count_params` computes these; ``tests/fl/test_model.py`` checks them against the closed
forms.) Local training is plain SGD with learning rate η (the paper's η = 0.01) on
cross-entropy, for δ1 epochs of seeded mini-batches. The step w ← w − η∇ is written out rather
than taken from ``torch.optim.SGD``, whose first step imports ``torch._dynamo`` (several seconds
per process) for the same arithmetic.

Determinism: the initial weights come from a ``torch.Generator`` seeded by the caller, and the
batch order from another; :func:`configure_torch` pins the thread count and turns on
``torch.use_deterministic_algorithms`` (CPU kernels of these layers are deterministic, so this
costs nothing here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from tbcim.errors import ConfigError

LANES_PER_WORD = 16  # int16 lanes per 256-bit word, as in tbcim.blockchain.codec
DEFAULT_MODEL = {"digits": "mlp", "cifar10": "cnn"}
MLP_HIDDEN = 32
CNN_CHANNELS = (16, 32, 32)
CNN_HIDDEN = 64
EVAL_BATCH = 2048


def configure_torch(threads: int | None = 1, deterministic: bool = True) -> None:
    """Pin torch's intra-op thread count (None leaves it) and request deterministic kernels."""
    if threads is not None:
        if threads < 1:
            raise ConfigError("fl.threads", f"must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def _mlp(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(int(np.prod(input_shape)), MLP_HIDDEN),
        nn.ReLU(),
        nn.Linear(MLP_HIDDEN, n_classes),
    )


def _cnn(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    if len(input_shape) != 3 or input_shape[1] % 8 or input_shape[2] % 8:
        raise ConfigError(
            "fl.model",
            f"cnn needs (channels, H, W) images with H, W divisible by 8, got {input_shape}",
        )
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for out in CNN_CHANNELS:
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        channels = out
    flat = channels * (input_shape[1] // 8) * (input_shape[2] // 8)
    layers += [
        nn.Flatten(),
        nn.Linear(flat, CNN_HIDDEN),
        nn.ReLU(),
        nn.Linear(CNN_HIDDEN, n_classes),
    ]
    return nn.Sequential(*layers)


MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {"mlp": _mlp, "cnn": _cnn}


def check_model_name(name: str) -> None:
    if name not in MODELS:
        raise ConfigError("fl.model", f"unknown model {name!r}; known: {sorted(MODELS)}")


def build_model(name: str, input_shape: tuple[int, ...], n_classes: int, seed: int) -> nn.Module:
    """A fresh model with weights drawn from a torch generator seeded by ``seed``."""
    check_model_name(name)
    if n_classes < 2:
        raise ConfigError("n_classes", f"must be at least 2, got {n_classes}")
    model = MODELS[name](tuple(input_shape), n_classes)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                # PyTorch's default init (Kaiming-uniform, a=√5), drawn from our generator.
                fan_in = module.weight[0].numel()
                bound = 1.0 / float(np.sqrt(fan_in))
                module.weight.uniform_(-bound, bound, generator=gen)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=gen)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def chain_words(num_params: int) -> int:
    """256-bit words an update of ``num_params`` int16 lanes takes on chain."""
    return -(-num_params // LANES_PER_WORD)


def get_params(model: nn.Module) -> NDArray[np.float64]:
    """All parameters as one float64 vector, in ``model.parameters()`` order."""
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().double().numpy()


def set_params(model: nn.Module, params: ArrayLike) -> None:
    """Load a flat vector written by :func:`get_params` (length and finiteness checked)."""
    vec = np.asarray(params, dtype=np.float64)
    expected = count_params(model)
    if vec.shape != (expected,):
        raise ConfigError("params", f"expected a vector of {expected} parameters, got {vec.shape}")
    if not np.all(np.isfinite(vec)):
        raise ConfigError("params", "must be finite")
    torch.nn.utils.vector_to_parameters(torch.from_numpy(vec).float(), model.parameters())


@dataclass(frozen=True)
class TrainResult:
    """Mean training loss of the last epoch and the number of SGD steps taken."""

    loss: float
    steps: int


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
) -> TrainResult:
    """δ1 = ``epochs`` epochs of mini-batch SGD (learning rate η = ``lr``) on cross-entropy."""
    if x.shape[0] == 0:
        raise ConfigError("train", "no training samples")
    params = [p for p in model.parameters() if p.requires_grad]
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    steps = 0
    last = 0.0
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        total = 0.0
        for start in range(0, x.shape[0], batch_size):
            batch = order[start : start + batch_size]
            loss = loss_fn(model(x[batch]), y[batch])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p.sub_(g, alpha=lr)  # plain SGD: w ← w − η∇
            total += float(loss.detach()) * batch.numel()
            steps += 1
        last = total / x.shape[0]
    return TrainResult(loss=last, steps=steps)


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    n: int


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Evaluation:
    """Mean cross-entropy and accuracy on (x, y)."""
    if x.shape[0] == 0:
        raise ConfigError("evaluate", "no samples to evaluate on")
    model.eval()
    loss_sum = 0.0
    correct = 0
    with torch.no_grad():
        for start in range(0, x.shape[0], EVAL_BATCH):
            logits = model(x[start : start + EVAL_BATCH])
            target = y[start : start + EVAL_BATCH]
            loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(dim=1) == target).sum())
    n = int(x.shape[0])
    return Evaluation(loss=loss_sum / n, accuracy=correct / n, n=n)


def to_tensors(x: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 images and int64 labels as torch tensors (no copy when already contiguous)."""
    return (
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
    )
