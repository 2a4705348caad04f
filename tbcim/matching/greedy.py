"""Greedy one-sided matching over a priority-sorted triple list (Algorithm 2, lines 5–14).

Triples are visited in priority order; a triple is taken when its buyer, data-seller and
UAV-seller are all still free. The scan is vectorised: it tests a chunk of the sorted list at
once with boolean masks and only steps element by element between hits, so a list of 10^6
triples costs a few numpy passes rather than a Python loop per triple.

Ties in priority are broken by the flat index (l, m, n) (stable sort), so results are
deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tbcim.matching.model import FloatArray, IntArray

_FIRST_CHUNK = 64


@dataclass(frozen=True)
class SortedTriples:
    """Feasible triples (R ≥ 0) in visiting order, with their coordinates and preferences."""

    buyer: IntArray
    data: IntArray
    uav: IntArray
    weight: FloatArray
    shape: tuple[int, int, int]

    def __len__(self) -> int:
        return int(self.buyer.size)


def sort_triples(
    preferences: FloatArray, priority: FloatArray | None = None, feasible: FloatArray | None = None
) -> SortedTriples:
    """Sort the feasible triples by ``priority`` descending (default: the preferences R).

    ``feasible`` defaults to R ≥ 0 (pairs with R < 0 are dropped, section V-A).
    """
    shape = preferences.shape
    flat_pref = preferences.ravel()
    keep = np.flatnonzero(flat_pref >= 0 if feasible is None else np.ravel(feasible))
    key = (flat_pref if priority is None else np.ravel(priority))[keep]
    order = keep[np.argsort(-key, kind="stable")]
    buyer, m, n = np.unravel_index(order, shape)
    return SortedTriples(
        buyer=buyer.astype(np.int64),
        data=m.astype(np.int64),
        uav=n.astype(np.int64),
        weight=flat_pref[order],
        shape=shape,  # type: ignore[arg-type]
    )


@dataclass
class MatchState:
    """Which buyers and sellers are taken."""

    buyer: np.ndarray
    data: np.ndarray
    uav: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int, int]) -> MatchState:
        return cls(*(np.zeros(size, dtype=bool) for size in shape))

    def take(self, buyer: int, m: int, n: int) -> None:
        self.buyer[buyer] = self.data[m] = self.uav[n] = True

    def copy(self) -> MatchState:
        return MatchState(self.buyer.copy(), self.data.copy(), self.uav.copy())


def scan(
    triples: SortedTriples,
    state: MatchState,
    start: int = 0,
    group: tuple[int | None, int | None, int | None] | None = None,
) -> list[int]:
    """Run the greedy from position ``start``; update ``state``; return the taken positions.

    With ``group`` = (l, m, n) where some entries may be None, triples matching every given
    coordinate are skipped (the group is withdrawn) and the scan stops right after taking the
    first triple that shares any given coordinate with the group (it blocks the whole group).
    """
    positions: list[int] = []
    total = len(triples)
    capacity = min(int((~state.buyer).sum()), int((~state.data).sum()), int((~state.uav).sum()))
    fixed = [] if group is None else [(ax, v) for ax, v in enumerate(group) if v is not None]
    axes = (triples.buyer, triples.data, triples.uav)
    chunk, pos = _FIRST_CHUNK, start
    while pos < total and capacity > 0:
        end = min(total, pos + chunk)
        chunk_b, chunk_m, chunk_n = (a[pos:end] for a in axes)
        free = ~(state.buyer[chunk_b] | state.data[chunk_m] | state.uav[chunk_n])
        if fixed:
            in_group = np.ones(end - pos, dtype=bool)
            for ax, value in fixed:
                in_group &= axes[ax][pos:end] == value
            free &= ~in_group
        hits = np.flatnonzero(free)
        if hits.size == 0:
            pos, chunk = end, chunk * 2
            continue
        hit = pos + int(hits[0])
        state.take(int(triples.buyer[hit]), int(triples.data[hit]), int(triples.uav[hit]))
        positions.append(hit)
        capacity -= 1
        if any(axes[ax][hit] == value for ax, value in fixed):
            break
        pos, chunk = hit + 1, _FIRST_CHUNK
    return positions


def greedy_positions(triples: SortedTriples) -> list[int]:
    """Positions (in ``triples``) taken by the plain greedy from an empty state."""
    return scan(triples, MatchState.empty(triples.shape))


def positions_to_triples(triples: SortedTriples, positions: list[int]) -> IntArray:
    """Rows (l, m, n) of the given positions."""
    idx = np.asarray(positions, dtype=np.int64)
    return np.stack([triples.buyer[idx], triples.data[idx], triples.uav[idx]], axis=1)
