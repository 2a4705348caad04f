"""FOGA: a fragmental-optimisation genetic algorithm for the 3-index assignment [51].

Encoding: an individual is three permutations (buyers, data-sellers, UAV-sellers); slot i < k =
min(L, M, N) is the triple (π_L[i], π_M[i], π_N[i]). A slot whose R is negative is left
unmatched. Fitness = Σ max(R, 0) over the slots, the buyers' total revenue F (9).

Operators: binary tournament selection, order crossover (OX) on each permutation, swap mutation,
elitism. The fragmental optimisation of Huang and Lim [51] is a steepest-ascent 2-exchange local
search applied to a fraction ``local_search`` of the children: swap two entries of one
permutation (a slot with another slot, or with an unused seller or buyer beyond slot k) while
that raises the fitness.

The defaults (population 20, 40 generations, crossover 0.9, mutation 0.3, 2 elites, local
search on 10 % of the children) are the ones used by the experiments; the random stream comes
from the caller's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tbcim.errors import ConfigError
from tbcim.matching.model import FloatArray, IntArray, Matching, MatchingMarket, make_matching

_EPS = 1e-12


@dataclass(frozen=True)
class FogaParams:
    """GA settings (documented in docs/matching.md)."""

    population: int = 20
    generations: int = 40
    crossover: float = 0.9
    mutation: float = 0.3
    elites: int = 2
    local_search: float = 0.1

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ConfigError("foga.population", f"must be >= 2, got {self.population}")
        if self.generations < 0:
            raise ConfigError("foga.generations", f"must be >= 0, got {self.generations}")
        for name in ("crossover", "mutation", "local_search"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"foga.{name}", "must be a probability in [0, 1]")
        if not 0 <= self.elites <= self.population:
            raise ConfigError("foga.elites", f"must be in [0, population], got {self.elites}")


Individual = tuple[IntArray, IntArray, IntArray]


def _slot_values(prefs: FloatArray, ind: Individual, k: int) -> FloatArray:
    return np.maximum(prefs[ind[0][:k], ind[1][:k], ind[2][:k]], 0.0)


def _fitness(prefs: FloatArray, ind: Individual, k: int) -> float:
    return float(_slot_values(prefs, ind, k).sum())


def _order_crossover(a: IntArray, b: IntArray, rng: np.random.Generator) -> IntArray:
    i, j = np.sort(rng.choice(a.size + 1, size=2, replace=False))
    child = np.empty_like(a)
    child[i:j] = a[i:j]
    rest = b[~np.isin(b, a[i:j])]
    child[:i], child[j:] = rest[:i], rest[i:]
    return child


def _local_search(prefs: FloatArray, ind: Individual, k: int) -> Individual:
    """Steepest-ascent 2-exchange on each permutation until no swap improves the fitness."""
    perms = [p.copy() for p in ind]
    improved = True
    while improved:
        improved = False
        for axis in range(3):
            perm = perms[axis]
            idx = [perms[0][:k, None], perms[1][:k, None], perms[2][:k, None]]
            idx[axis] = perm[None, :]
            cand = np.maximum(prefs[idx[0], idx[1], idx[2]], 0.0)  # (k, size): element j in slot i
            cur = np.diag(cand[:, :k]).copy()
            gain = cand - cur[:, None]
            gain[:, :k] += cand[:, :k].T - cur[None, :]
            i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
            if gain[i, j] > _EPS and i != j:
                perm[i], perm[j] = perm[j], perm[i]
                improved = True
    return perms[0], perms[1], perms[2]


def foga(
    market: MatchingMarket, rng: np.random.Generator, params: FogaParams = FogaParams()
) -> Matching:
    """Best matching found by the GA (deterministic for a given generator state)."""
    prefs = market.preferences
    shape = market.shape
    k = min(shape)
    population: list[Individual] = [
        (rng.permutation(shape[0]), rng.permutation(shape[1]), rng.permutation(shape[2]))
        for _ in range(params.population)
    ]
    scores = np.array([_fitness(prefs, ind, k) for ind in population])
    for _ in range(params.generations):
        ranked = np.argsort(-scores, kind="stable")
        children = [population[i] for i in ranked[: params.elites]]
        while len(children) < params.population:
            a, b = (_tournament(scores, rng) for _ in range(2))
            child = list(population[a])
            if rng.random() < params.crossover:
                child = [
                    _order_crossover(x, y, rng) for x, y in zip(child, population[b], strict=True)
                ]
            if rng.random() < params.mutation:
                axis = int(rng.integers(3))
                if child[axis].size > 1:
                    i, j = rng.choice(child[axis].size, size=2, replace=False)
                    child[axis] = child[axis].copy()
                    child[axis][[i, j]] = child[axis][[j, i]]
            offspring = (child[0], child[1], child[2])
            if rng.random() < params.local_search:
                offspring = _local_search(prefs, offspring, k)
            children.append(offspring)
        population = children
        scores = np.array([_fitness(prefs, ind, k) for ind in population])
    best = population[int(np.argmax(scores))]
    values = prefs[best[0][:k], best[1][:k], best[2][:k]]
    keep = values >= 0
    rows = np.stack([best[0][:k][keep], best[1][:k][keep], best[2][:k][keep]], axis=1)
    return make_matching(rows, market)


def _tournament(scores: FloatArray, rng: np.random.Generator) -> int:
    i, j = rng.integers(scores.size, size=2)
    return int(i if scores[i] >= scores[j] else j)
