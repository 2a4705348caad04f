"""Central training on all training data: the ceiling the federated runs are compared with.

The same model, optimiser (SGD, learning rate η) and batch size as the clients, on the whole
training split, evaluated on the task test set after every epoch. It is a ceiling for
comparisons, not a tuned result: nothing here looks at the test set to choose anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbcim.errors import ConfigError
from tbcim.fl.model import build_model, get_params, set_params, to_tensors, train
from tbcim.fl.streams import LOCAL_TRAINING, torch_generator
from tbcim.fl.task import FLTask

CENTRAL_ED = 2**31  # stream key of the central trainer, distinct from every ED index


@dataclass(frozen=True)
class CentralResult:
    params: NDArray[np.float64]
    accuracy: tuple[float, ...]  # task test accuracy after each epoch
    loss: tuple[float, ...]


def train_central(task: FLTask, epochs: int) -> CentralResult:
    """``epochs`` epochs of SGD on the task's whole training split, from its initial model."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError("epochs", f"must be a positive integer, got {epochs!r}")
    c = task.config
    model = build_model(c.model_name, task.dataset.input_shape, task.dataset.n_classes, c.seed)
    x, y = to_tensors(task.dataset.x_train, task.dataset.y_train)
    params = task.initial_params.copy()
    acc: list[float] = []
    loss: list[float] = []
    for epoch in range(epochs):
        set_params(model, params)
        gen = torch_generator(LOCAL_TRAINING, c.seed, CENTRAL_ED, epoch)
        train(model, x, y, 1, c.lr, c.batch_size, gen)
        params = get_params(model)
        ev = task.evaluate(params)
        acc.append(ev.accuracy)
        loss.append(ev.loss)
    return CentralResult(params=params, accuracy=tuple(acc), loss=tuple(loss))
