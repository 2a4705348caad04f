"""Detection and false-positive rates of the contract's verification, and the rule that picks
the documented thresholds from their curves (issue 9, item 4; scripts/fl_detection.py).

- **Detection rate**: the share of attackers' updates from the round their attack switches on
  that are not included in FedAvg (rejected at submission or excluded by the norm bound).
  Updates an attacker sends before it switches are honest in content and counted in neither
  rate.
- **False-positive rate**: the share of honest EDs' updates (every round) not included.
- **Choice** (:func:`choose`): among the candidate values whose worst false-positive rate is at
  most ``max_false_positive``, the one with the highest detection rate; ties go to the larger
  value. The rule is fixed before the curves are measured.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tbcim.errors import ConfigError


class Outcome(Protocol):
    """What a round record must say (``VerifiedRound`` and ``ChainRound`` both do)."""

    @property
    def round(self) -> int: ...

    @property
    def participants(self) -> tuple[int, ...]: ...

    @property
    def accepted(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class Rates:
    """Counts behind the two rates of one run."""

    malicious: int  # attackers' updates from the switch on
    malicious_rejected: int
    honest: int  # honest EDs' updates
    honest_rejected: int

    @property
    def detection(self) -> float | None:
        return self.malicious_rejected / self.malicious if self.malicious else None

    @property
    def false_positive(self) -> float | None:
        return self.honest_rejected / self.honest if self.honest else None


def rates(records: Iterable[Outcome], attackers: Collection[int], start: int) -> Rates:
    """Count the attackers' updates from round ``start`` on and the honest EDs' updates, and
    how many of each were left out of FedAvg."""
    counts = [0, 0, 0, 0]
    for record in records:
        included = set(record.accepted)
        for ed in record.participants:
            if ed in attackers:
                if record.round < start:
                    continue
                slot = 0
            else:
                slot = 2
            counts[slot] += 1
            counts[slot + 1] += ed not in included
    return Rates(*counts)


def choose(
    detection: Mapping[float, float],
    false_positive: Mapping[float, float],
    max_false_positive: float = 0.05,
) -> float | None:
    """The candidate value (e.g. ε) with the highest ``detection`` among those whose
    ``false_positive`` is at most ``max_false_positive`` (ties: the larger value); None when no
    candidate qualifies."""
    if set(detection) != set(false_positive):
        raise ConfigError("candidates", "detection and false-positive curves need the same points")
    feasible: Sequence[float] = [
        v for v in detection if false_positive[v] <= max_false_positive + 1e-12
    ]
    if not feasible:
        return None
    return max(feasible, key=lambda v: (detection[v], v))
