"""FL rounds through the contract's verification mirrored off chain (no chain, same numbers).

Each round is the on-chain round of :class:`~tbcim.fl.onchain.OnChainFL` with the chain replaced
by :class:`~tbcim.blockchain.verifier.ContractVerifier`: every participant trains from the
current (dequantised) global model, its update is screened
(:func:`~tbcim.fl.client.screen_updates`), quantised with the shared codec and judged in ED
order exactly as the contract judges it (duplicate, reference rule, the paper's own-history rule
of section II-A, norm bound, clipping, FedAvg on int16 lanes); the next round trains from the
dequantised result. The global-model hashes equal the chain's (tests/fl/test_verified.py), so
detection curves against the thresholds (scripts/fl_detection.py) cost training time only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbcim.blockchain.aggregator import AggregatorConfig
from tbcim.blockchain.codec import FixedPointCodec, Verdict, chunked_hash, pack_update
from tbcim.blockchain.verifier import ContractVerifier
from tbcim.errors import ConfigError
from tbcim.fl.client import screen_updates
from tbcim.fl.model import Evaluation
from tbcim.fl.onchain import ChainTask

Vector = NDArray[np.float64]


@dataclass(frozen=True)
class VerifiedRound:
    """One round through the mirror: who was included, who was set aside and why."""

    round: int  # FL round, 0-based
    accuracy: float
    loss: float
    participants: tuple[int, ...]
    accepted: tuple[int, ...]  # included in FedAvg
    rejected: dict[int, str]  # ED -> screening reason, verdict name or NORM_BOUND
    model_hash: str  # the chunked hash the contract would store


def run_verified(
    task: ChainTask,
    config: AggregatorConfig,
    rounds: int,
    *,
    bootstrap: bool = True,
    participants: Callable[[int], Collection[int]] | None = None,
    evaluate: Callable[[Vector], Evaluation] | None = None,
    on_round: Callable[[VerifiedRound], None] | None = None,
) -> tuple[Vector, list[VerifiedRound]]:
    """``rounds`` FL rounds of ``task`` verified and aggregated as the contract with ``config``
    would; returns the final (dequantised) model and one record per round.

    ``bootstrap`` publishes the task's bootstrap reference with the initial model (as the
    on-chain runs do); ``participants(round)`` names the EDs of a round (default: all);
    ``evaluate`` scores the model after each round (default: the task's test set; tuning code
    must pass the validation set's)."""
    if config.num_params != task.num_params:
        raise ConfigError(
            "num_params", f"the aggregator has {config.num_params}, the model {task.num_params}"
        )
    if rounds < 1:
        raise ConfigError("rounds", f"must be at least 1, got {rounds}")
    codec = FixedPointCodec(config.frac_bits)
    sizes = {ed: int(n) for ed, n in enumerate(task.data_sizes)}
    reference = (
        codec.quantize(task.bootstrap_reference(), "bootstrap reference") if bootstrap else None
    )
    verifier: ContractVerifier[int] = ContractVerifier(
        config, sizes, codec.quantize(task.initial_params, "initial model"), reference
    )
    score = task.evaluate if evaluate is None else evaluate
    records = []
    params = codec.dequantize(verifier.model)
    for r in range(rounds):
        eds = sorted(sizes) if participants is None else sorted(participants(r))
        screened = screen_updates(task.submissions(params, r, eds), task.num_params, codec)
        rejected: dict[int, str] = dict(screened.rejected)
        quantised = {
            ed: codec.quantize(u, f"update of ED {ed}") for ed, u in screened.valid.items()
        }
        included: tuple[int, ...] = ()
        if quantised:
            result = verifier.run_round(quantised)
            rejected.update(
                {ed: v.name for ed, v in result.verdicts.items() if v != Verdict.ACCEPTED}
            )
            included = tuple(sorted(result.included))
        params = codec.dequantize(verifier.model)
        evaluation = score(params)
        model_hash = chunked_hash(pack_update(verifier.model), config.spans)
        record = VerifiedRound(r, evaluation.accuracy, evaluation.loss, tuple(eds), included,
                               dict(sorted(rejected.items())), "0x" + model_hash.hex())  # fmt: skip
        records.append(record)
        if on_round is not None:
            on_round(record)
    return params, records
