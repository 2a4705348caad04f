"""Adversarial EDs (issue 9, item 4): attacks with one signature, picked by name.

Every update attack is a numpy function ``attack(honest, ctx) -> submitted`` of the ED's honest
delta and an :class:`AttackContext`; :data:`ATTACKS` maps names to :class:`AttackSpec`.

============== ===================================================================================
``none``        the honest update
``sign_flip``   −w
``scaling``     ``scale``·w (default ×10)
``noise``       Gaussian noise with the norm of the honest update, |n| = |w|
``label_flip``  data poisoning: the ED trains on labels y → L−1−y (:func:`flip_labels`); the
                update is then its honest training result on the poisoned data
``replay``      free-riding: resubmits its own latest earlier submission; in its very first round
                it has none and submits its honest update (it must train once to have anything
                to replay)
``copy``        free-riding: copies another ED's update (picked with the attack stream) from
                what it can see, plus optional Gaussian noise of norm ``copy_noise``·|copied|;
                with no peer to copy it replays instead. The task gives it the honest updates
                of the previous round (public in the logs; commit-reveal hides the current
                round's until the copier has committed)
============== ===================================================================================

An :class:`Adversary` switches its attack on at ``start_round`` (0 = from its first round);
before that it submits honest updates, which is the only case the paper's own-history cosine rule
(section II-A) can catch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tbcim.errors import ConfigError
from tbcim.fl.streams import ATTACK, numpy_rng

Vector = NDArray[np.float64]


@dataclass(frozen=True)
class AttackContext:
    """What an attacker knows when it submits.

    ``previous``: its own earlier submissions, oldest first. ``peers``: the other EDs' updates
    it can see (ED index → update), read from the chain's logs.
    """

    rng: np.random.Generator
    previous: Sequence[Vector] = ()
    peers: Mapping[int, Vector] = field(default_factory=dict)
    scale: float = 10.0
    copy_noise: float = 0.0


UpdateAttack = Callable[[Vector, AttackContext], Vector]


def _vector(update: ArrayLike) -> Vector:
    return np.asarray(update, dtype=np.float64)


def _noise_with_norm(rng: np.random.Generator, size: int, norm: float) -> Vector:
    g = rng.standard_normal(size)
    length = float(np.linalg.norm(g))
    return g * (norm / length) if length > 0 else g


def honest(update: Vector, ctx: AttackContext) -> Vector:
    """No attack (also the update of ``label_flip``, whose poison is in the data)."""
    return _vector(update).copy()


def sign_flip(update: Vector, ctx: AttackContext) -> Vector:
    """−w."""
    return -_vector(update)


def scaling(update: Vector, ctx: AttackContext) -> Vector:
    """scale·w."""
    return ctx.scale * _vector(update)


def gaussian_noise(update: Vector, ctx: AttackContext) -> Vector:
    """Isotropic Gaussian noise rescaled to the honest update's norm (carries no signal)."""
    w = _vector(update)
    return _noise_with_norm(ctx.rng, w.size, float(np.linalg.norm(w)))


def replay(update: Vector, ctx: AttackContext) -> Vector:
    """The ED's own latest earlier submission (its honest update when it has none)."""
    return _vector(ctx.previous[-1] if ctx.previous else update).copy()


def copy_peer(update: Vector, ctx: AttackContext) -> Vector:
    """Another ED's current update (plus noise of norm copy_noise·|copied|).

    With no peer to copy (every other participant is down or attacking) it falls back to
    :func:`replay`, so a round never stops for want of a victim.
    """
    if not ctx.peers:
        return replay(update, ctx)
    keys = sorted(ctx.peers)
    source = _vector(ctx.peers[keys[int(ctx.rng.integers(len(keys)))]])
    if ctx.copy_noise == 0:
        return source.copy()
    noise_norm = ctx.copy_noise * float(np.linalg.norm(source))
    return source + _noise_with_norm(ctx.rng, source.size, noise_norm)


def flip_labels(labels: ArrayLike, n_classes: int) -> NDArray[np.int64]:
    """Label flipping (data poisoning): class y becomes L−1−y."""
    y = np.asarray(labels, dtype=np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ConfigError("labels", f"must lie in 0..{n_classes - 1}")
    return (n_classes - 1 - y).astype(np.int64)


@dataclass(frozen=True)
class AttackSpec:
    """An attack: its update function and whether it poisons the ED's training labels."""

    name: str
    tamper: UpdateAttack
    poisons_labels: bool = False


ATTACKS: dict[str, AttackSpec] = {
    spec.name: spec
    for spec in (
        AttackSpec("none", honest),
        AttackSpec("sign_flip", sign_flip),
        AttackSpec("scaling", scaling),
        AttackSpec("noise", gaussian_noise),
        AttackSpec("label_flip", honest, poisons_labels=True),
        AttackSpec("replay", replay),
        AttackSpec("copy", copy_peer),
    )
}


def get_attack(name: str) -> AttackSpec:
    """The attack called ``name``; an unknown name lists the known ones."""
    spec = ATTACKS.get(name)
    if spec is None:
        raise ConfigError("fl.attack", f"unknown attack {name!r}; known: {sorted(ATTACKS)}")
    return spec


def choose_attackers(n_eds: int, fraction: float, rng: np.random.Generator) -> NDArray[np.int64]:
    """round(fraction·n_eds) distinct ED indices, sorted."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError("fl.attack_fraction", f"must lie in [0, 1], got {fraction}")
    if n_eds < 1:
        raise ConfigError("fl.n_eds", f"must be at least 1, got {n_eds}")
    k = round(fraction * n_eds)
    return np.sort(rng.choice(n_eds, size=k, replace=False)).astype(np.int64)


@dataclass
class Adversary:
    """One attacking ED: applies its attack from ``start_round`` on and remembers what it sent
    (its last ``keep`` submissions, oldest first; a CIFAR update is 47,818 floats).

    The attack's randomness comes from the stream (ATTACK, seed, ED, round), so a submission does
    not depend on the order in which a runner visits the EDs.
    """

    ed: int
    attack: str
    start_round: int = 0
    seed: int = 0
    scale: float = 10.0
    copy_noise: float = 0.0
    keep: int = 1  # earlier submissions remembered (replay needs the latest only)
    submitted: list[Vector] = field(default_factory=list)
    rounds_submitted: int = 0

    def __post_init__(self) -> None:
        self.spec = get_attack(self.attack)
        if self.start_round < 0:
            raise ConfigError("fl.attack_start_round", f"must be >= 0, got {self.start_round}")
        if not np.isfinite(self.scale):
            raise ConfigError("fl.attack_scale", f"must be finite, got {self.scale}")
        if not np.isfinite(self.copy_noise) or self.copy_noise < 0:
            raise ConfigError("fl.copy_noise", f"must be >= 0, got {self.copy_noise}")
        if self.keep < 1:
            raise ConfigError("keep", f"must remember at least one submission, got {self.keep}")

    def active(self, round: int) -> bool:
        return round >= self.start_round

    def submit(self, round: int, honest_update: ArrayLike, peers: Mapping[int, Vector]) -> Vector:
        """The update this ED sends in ``round``, given its honest update and its peers'."""
        w = _vector(honest_update)
        if self.active(round):
            ctx = AttackContext(
                rng=numpy_rng(ATTACK, self.seed, self.ed, round),
                previous=tuple(self.submitted),
                peers={k: v for k, v in peers.items() if k != self.ed},
                scale=self.scale,
                copy_noise=self.copy_noise,
            )
            out = self.spec.tamper(w, ctx)
        else:
            out = w.copy()
        self.submitted = [*self.submitted, out.copy()][-self.keep :]
        self.rounds_submitted += 1
        return out
