"""The aggregator contract's verification and aggregation of a round, mirrored off chain.

:class:`ContractVerifier` replays what ``contracts/FLAggregator.sol`` does with one round's
quantised int16 updates, integer for integer, using the integer mirror in
:mod:`tbcim.blockchain.codec` (TBCIM section II-A, Fig. 3; the extensions are in
docs/contracts.md):

1. **At submission**, in submission order, each complete update gets a verdict (``_judge``):
   zero update; duplicate (its chunked hash was accepted before, by anyone, in any round);
   the reference rule ``cos(w, r) >= eps_ref`` against the last round's mean update (or the
   bootstrap reference published with the initial model); the paper's own-history rule
   ``(1/n) sum_j cos(w, u_j) >= eps_hist`` over the ED's n accepted unit vectors of its current
   window, checked only once the ED has history and while its window is not full. An accepted
   update extends the ED's window (or starts a new one when it was empty or full); a rejected
   update changes nothing.
2. **At aggregation**, accepted updates whose norm hint exceeds ``k`` times the round's
   data-weighted median hint are excluded (reported as :attr:`Verdict.NORM_BOUND`); the others
   are clipped to ``c`` times that median and FedAvg'd; the mean update becomes the next
   reference unless it rounded to zero. A round with no accepted update is skipped (model
   unchanged); if it rejected an update by the reference rule, the reference is dropped
   (``ReferenceCleared`` when the next round opens), otherwise it stays.

The checks that only a misbehaving client can fail (wrong norm hint, missing commitment, a
stale history) cannot happen here: the mirror computes those itself. The thresholds come from
:class:`~tbcim.blockchain.aggregator.AggregatorConfig` through its ``settings()`` tuple, so the
ppm rounding is the deployment's. ``tests/chain/test_verifier.py`` checks the mirror against
the contract on the embedded chain, verdict by verdict and lane by lane.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from tbcim.blockchain.aggregator import AggregatorConfig
from tbcim.blockchain.codec import (
    INT16_MAX,
    INT16_MIN,
    HistoryState,
    IntArray,
    Verdict,
    aggregation_weights,
    chunked_hash,
    cosine_at_least,
    exact_dot,
    fedavg,
    norm_hint,
    norm_squared,
    pack_update,
)
from tbcim.errors import ConfigError

K = TypeVar("K", bound=Hashable)

# Indices of the thresholds in AggregatorConfig.settings() (the contract's Settings order).
_HISTORY_EPS, _REFERENCE_EPS, _NORM_BOUND, _CLIP = 7, 8, 9, 10


@dataclass(frozen=True)
class Judgement:
    """One update's verdict and the integers the contract logs with it."""

    verdict: Verdict
    norm_squared: int
    history_dot: int
    reference_dot: int
    update_hash: bytes

    @property
    def accepted(self) -> bool:
        """Accepted at submission (it may still be excluded by the norm bound)."""
        return self.verdict == Verdict.ACCEPTED


@dataclass(frozen=True)
class RoundResult(Generic[K]):
    """A verified and aggregated round.

    ``judgements``: each ED's verdict at submission; ``verdicts``: the final ones, where an
    accepted update left out by the norm bound is :attr:`Verdict.NORM_BOUND`; ``included``: the
    EDs averaged, in submission order; ``model`` / ``reference``: the global model and the
    reference after the round; ``aggregated``: False when no update was accepted (the round is
    skipped and both stay as they were)."""

    round: int
    judgements: dict[K, Judgement]
    verdicts: dict[K, Verdict]
    included: tuple[K, ...]
    model: IntArray
    reference: IntArray | None
    saturated: int
    aggregated: bool


class ContractVerifier(Generic[K]):
    """The global model, the reference, each ED's history window and the accepted update hashes
    of one aggregator, advanced a round at a time by :meth:`run_round`.

    ``data_sizes`` registers the EDs (keys of any hashable type) with their FedAvg weights;
    ``initial_model`` and ``reference`` are what the publisher publishes (int16 values; a zero
    or absent reference means none, as on chain)."""

    def __init__(
        self,
        config: AggregatorConfig,
        data_sizes: Mapping[K, int],
        initial_model: ArrayLike,
        reference: ArrayLike | None = None,
    ) -> None:
        self.config = config
        settings = config.settings()
        self.history_epsilon_ppm = settings[_HISTORY_EPS]
        self.reference_epsilon_ppm = settings[_REFERENCE_EPS]
        self.norm_bound_ppm = settings[_NORM_BOUND]
        self.clip_ppm = settings[_CLIP]
        self.spans = config.spans
        bad = {k: n for k, n in data_sizes.items() if int(n) < 1}
        if not data_sizes or bad:
            raise ConfigError("data_sizes", f"need at least one ED, each with data > 0; got {bad}")
        self.data_sizes = {k: int(n) for k, n in data_sizes.items()}
        self.model = self._vector(initial_model, "initial model")
        self.reference: IntArray | None = None
        self.reference_sq = 0
        self._clear_on_open = False  # the last round accepted nothing and rejected by reference
        if reference is not None:
            self._set_reference(self._vector(reference, "reference"))
        self.histories: dict[K, HistoryState] = {
            k: HistoryState(config.num_params, config.history_window) for k in self.data_sizes
        }
        self.accepted_hashes: dict[bytes, int] = {}  # update hash -> round it was accepted in
        self.round = 0

    def _vector(self, values: ArrayLike, name: str) -> IntArray:
        v = np.asarray(values)
        if v.shape != (self.config.num_params,):
            raise ConfigError(name, f"expected {self.config.num_params} values, got {v.shape}")
        if not np.issubdtype(v.dtype, np.integer):
            raise ConfigError(name, f"must hold quantised integers, got dtype {v.dtype}")
        if v.size and (v.min() < INT16_MIN or v.max() > INT16_MAX):
            raise ConfigError(name, f"values must lie in [{INT16_MIN}, {INT16_MAX}]")
        return v.astype(np.int64)

    def _set_reference(self, values: IntArray) -> None:
        """The contract's rule: a zero vector has no direction and leaves the reference as is."""
        sq = norm_squared(values)
        if sq:
            self.reference, self.reference_sq = values.copy(), sq

    def judge(self, ed: K, update: IntArray) -> Judgement:
        """The verdict ``submit`` gives ``ed``'s complete update now (``_judge``); an accepted
        update is recorded (its hash, the ED's history)."""
        if ed not in self.histories:
            raise ConfigError("ed", f"{ed!r} is not a registered ED")
        update_hash = chunked_hash(pack_update(update), self.spans)
        sq = norm_squared(update)
        state = self.histories[ed]
        with_history = state.active
        history_dot = exact_dot(update, state.values) if with_history else 0
        reference_dot = 0 if self.reference is None else exact_dot(update, self.reference)
        if sq == 0:
            verdict = Verdict.ZERO_UPDATE
        elif update_hash in self.accepted_hashes:
            verdict = Verdict.DUPLICATE
        elif self.reference is not None and not cosine_at_least(
            reference_dot, self.reference_epsilon_ppm, 1, sq, self.reference_sq
        ):
            verdict = Verdict.REFERENCE_COSINE
        elif with_history and not cosine_at_least(
            history_dot, self.history_epsilon_ppm, state.count * self.config.unit_scale, sq, 1
        ):
            verdict = Verdict.HISTORY_COSINE
        else:
            verdict = Verdict.ACCEPTED
            self.accepted_hashes[update_hash] = self.round
            state.accept(update, self.config.unit_scale)
        return Judgement(verdict, sq, history_dot, reference_dot, update_hash)

    def run_round(self, updates: Mapping[K, ArrayLike]) -> RoundResult[K]:
        """Verify ``updates`` (ED -> int16 update, in submission order) and aggregate them."""
        self.round += 1
        if self._clear_on_open:
            self.reference, self.reference_sq, self._clear_on_open = None, 0, False
        values = {ed: self._vector(u, f"update of {ed!r}") for ed, u in updates.items()}
        judgements = {ed: self.judge(ed, w) for ed, w in values.items()}
        verdicts = {ed: j.verdict for ed, j in judgements.items()}
        accepted = [ed for ed, j in judgements.items() if j.accepted]
        if not accepted:
            # ReferenceCleared when the next round opens: no lock-out by a bad reference.
            self._clear_on_open = Verdict.REFERENCE_COSINE in verdicts.values()
            return RoundResult(
                self.round, judgements, verdicts, (), self.model.copy(),
                self._reference_copy(), 0, False,
            )  # fmt: skip
        weights, total = aggregation_weights(
            [norm_hint(values[ed]) for ed in accepted],
            [self.data_sizes[ed] for ed in accepted],
            self.norm_bound_ppm,
            self.clip_ppm,
        )
        # A weight is 0 exactly when the update is above the norm bound: with k <= 4000 and
        # c >= 1 the clipping factor of an included update is at least 2^16 / 4000 > 0.
        for ed, weight in zip(accepted, weights, strict=True):
            if weight == 0:
                verdicts[ed] = Verdict.NORM_BOUND
        included = tuple(ed for ed, weight in zip(accepted, weights, strict=True) if weight)
        self.model, mean, saturated = fedavg(
            self.model, [values[ed] for ed in accepted], weights, total
        )
        self._set_reference(mean)
        return RoundResult(
            self.round, judgements, verdicts, included, self.model.copy(),
            self._reference_copy(), saturated, True,
        )  # fmt: skip

    def _reference_copy(self) -> IntArray | None:
        return None if self.reference is None else self.reference.copy()
