"""One FL task, assembled from an :class:`~tbcim.fl.config.FLConfig` (chain-independent).

:func:`build_task` draws, from independent streams of the config's seed: the task's reference
distribution P_a (a mixture, section V-A), the task test set that follows P_a, the requester's
validation set (drawn the same way from the validation split), the partition of the training
split over the EDs, the attacking EDs, and builds one :class:`Client` per ED and an
:class:`Adversary` per attacker.

The requester trains once on its validation set from the initial model; that delta is the
bootstrap reference direction published with the initial model (the root-dataset update of
FLTrust, Cao et al. 2021), so the contract's reference rule is armed from the first round. The
validation set is also what thresholds and defaults are tuned on; the test set never is.

Everything the lower level reads (label counts → θ (26), data sizes) comes from
``task.partition``; :func:`tbcim.fl.partitions.server_table` lays it out in the lower level's
(S, N) shapes.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from tbcim.errors import ConfigError
from tbcim.fl.attacks import Adversary, choose_attackers
from tbcim.fl.client import Client, LocalTraining
from tbcim.fl.config import FLConfig
from tbcim.fl.data import Dataset, load_dataset
from tbcim.fl.model import (
    Evaluation,
    build_model,
    configure_torch,
    evaluate,
    get_params,
    set_params,
    to_tensors,
)
from tbcim.fl.partitions import Partition, draw_reference, make_partition, task_test_indices
from tbcim.fl.streams import (
    ATTACKERS,
    MODEL_INIT,
    PARTITION,
    REFERENCE,
    TASK_TEST,
    TASK_VALIDATION,
    numpy_rng,
)

Vector = NDArray[np.float64]
#: The requester's key in the training streams (no ED's, not the central trainer's 2**31).
REQUESTER = 2**31 + 1


class UpdateSource(Protocol):
    """What a round loop needs from the FL side; ``tbcim.blockchain`` never sees torch.

    ``submissions`` returns, for each participating ED, the float64 delta it sends this round
    (an attacker's after its attack); a runner screens them
    (:func:`~tbcim.fl.client.screen_updates`) before encoding.
    """

    @property
    def num_params(self) -> int: ...

    @property
    def data_sizes(self) -> NDArray[np.int64]: ...

    def submissions(
        self, params: Vector, round: int, participants: Collection[int]
    ) -> dict[int, Vector]: ...


@dataclass
class FLTask:
    """A task's data, clients and adversaries; :meth:`evaluate` scores a global model on it."""

    config: FLConfig
    dataset: Dataset
    reference: Vector
    partition: Partition
    test_indices: NDArray[np.int64]
    validation_indices: NDArray[np.int64]
    clients: list[Client]
    adversaries: dict[int, Adversary]
    initial_params: Vector
    requester: Client
    #: Honest EDs' updates of the previous round: public in the logs, so what a copier can copy.
    published: dict[int, Vector] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        c = self.config
        d = self.dataset
        self._model = build_model(c.model_name, d.input_shape, d.n_classes, c.seed)
        self._test = to_tensors(d.x_test[self.test_indices], d.y_test[self.test_indices])
        val = self.validation_indices
        self._validation = to_tensors(d.x_val[val], d.y_val[val])

    @property
    def num_params(self) -> int:
        return int(self.initial_params.size)

    @property
    def data_sizes(self) -> NDArray[np.int64]:
        return self.partition.data_sizes

    def submissions(
        self, params: Vector, round: int, participants: Collection[int]
    ) -> dict[int, Vector]:
        """Every participant's delta from ``params`` this round (attackers' after their attack).

        Honest deltas are computed first. A copier copies an honest ED's update of the
        previous round: that one is public in the logs, while this round's are hidden by
        commit-reveal until the copier has committed (in its first round it has nothing to
        copy and sends its own update). Call it once per round: an attacker records what it
        sent (a replayer resends it).
        """
        honest = {ed: self.clients[ed].local_update(params, round) for ed in sorted(participants)}
        sent = {
            ed: self.adversaries[ed].submit(round, u, self.published)
            if ed in self.adversaries
            else u
            for ed, u in honest.items()
        }
        self.published = {ed: u for ed, u in honest.items() if ed not in self.adversaries}
        return sent

    def evaluate(self, params: Vector) -> Evaluation:
        """Loss and accuracy of ``params`` on the task test set (labels follow P_a)."""
        set_params(self._model, params)
        return evaluate(self._model, *self._test)

    def evaluate_validation(self, params: Vector) -> Evaluation:
        """The same on the requester's validation set: what tuning may look at."""
        set_params(self._model, params)
        return evaluate(self._model, *self._validation)

    def bootstrap_reference(self) -> Vector:
        """The requester's delta from the initial model after δ1 epochs on its validation set:
        the reference direction published with the initial model."""
        return self.requester.local_update(self.initial_params, 0)


def build_task(
    config: FLConfig, n_eds: int, dataset: Dataset | None = None, task_index: int = 0
) -> FLTask:
    """Data, reference, task test set, partition, clients and attackers for ``n_eds`` EDs.

    ``task_index`` numbers the consecutive tasks of a market (section II-A): each task draws its
    own reference P_a, test and validation sets, while the EDs (partition, clients, attackers)
    and the initial model stay those of the seed. Task 0 uses the streams of a single task.
    """
    c = config
    if isinstance(task_index, bool) or not isinstance(task_index, int) or task_index < 0:
        raise ConfigError("task_index", f"must be a non-negative integer, got {task_index!r}")
    per_task = (c.seed,) if task_index == 0 else (c.seed, task_index)
    configure_torch(c.threads)
    data = (
        load_dataset(c.dataset, c.data_dir, c.seed, c.val_fraction, c.test_fraction)
        if dataset is None
        else dataset
    )
    reference = draw_reference(
        numpy_rng(REFERENCE, *per_task),
        data.n_classes,
        c.task_concentration,
        c.reference_uniform_weight,
    )
    test_idx = task_test_indices(
        data.y_test, reference, numpy_rng(TASK_TEST, *per_task), data.n_classes
    )
    val_idx = task_test_indices(
        data.y_val, reference, numpy_rng(TASK_VALIDATION, *per_task), data.n_classes
    )
    partition = make_partition(
        c.partition,
        data.y_train,
        n_eds,
        numpy_rng(PARTITION, c.seed),
        c.alpha,
        c.min_samples,
        data.n_classes,
    )
    attack_on = c.attack != "none"
    attackers = (
        choose_attackers(n_eds, c.attack_fraction, numpy_rng(ATTACKERS, c.seed))
        if attack_on
        else np.zeros(0, dtype=np.int64)
    )
    training = LocalTraining(c.local_epochs, c.lr, c.batch_size)
    clients = [
        Client(
            ed,
            data.x_train[idx],
            data.y_train[idx],
            c.model_name,
            data.input_shape,
            data.n_classes,
            training,
            c.seed,
            attack=c.attack if ed in attackers else "none",
            attack_start_round=c.attack_start_round,
        )
        for ed, idx in enumerate(partition.indices)
    ]
    adversaries = {
        int(ed): Adversary(
            int(ed), c.attack, c.attack_start_round, c.seed, c.attack_scale, c.copy_noise
        )
        for ed in attackers
    }
    init_seed = int(numpy_rng(MODEL_INIT, c.seed).integers(2**62))
    init = build_model(c.model_name, data.input_shape, data.n_classes, init_seed)
    requester = Client(
        REQUESTER,
        data.x_val[val_idx],
        data.y_val[val_idx],
        c.model_name,
        data.input_shape,
        data.n_classes,
        training,
        c.seed,
    )
    return FLTask(
        c,
        data,
        reference,
        partition,
        test_idx,
        val_idx,
        clients,
        adversaries,
        get_params(init),
        requester,
    )
