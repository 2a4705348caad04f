"""The reverse-auction interface shared by RANet and the analytic mechanisms (section III-A).

A batch of type profiles is a :class:`Profiles` (arrays of shape (B, S)); a :class:`Mechanism`
maps it to an allocation z and an expected payment p, both (B, S).

Utilities, reverse-auction convention (MODEL-NOTES §2), equation numbers of
``docs/auction-mechanisms.md``:

    u_s        = p_s − z_s·c_s                      ES utility                         (M1)
    U_buyer    = U_d(z) − Σ_s p_s                   the paper's "social welfare" (1)   (M2)
    W_true     = U_d(z) − Σ_s z_s·c_s               true social welfare                (M3)

When a mechanism is run for real (:func:`realise`), the winners are drawn from z and each winner
is paid p_s / z_s, so expected payments equal p and truthfulness holds in expectation (M4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from tbcim.errors import ConfigError

Array = NDArray[np.float64]

#: Slack allowed when checking an outcome: Σ z ≤ 1 + OUTCOME_TOL, z ∈ [−tol, 1 + tol].
OUTCOME_TOL = 1e-6


def as_batch(name: str, values: object) -> Array:
    """``values`` as a finite float64 (B, S) array; anything else is a :class:`ConfigError`."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ConfigError(name, f"must be a 2-D array (profiles, servers), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ConfigError(name, "contains NaN or infinite values")
    return array


class BidSpace(Protocol):
    """What the interface reads of an auction setting.

    :class:`tbcim.auction.settings.AuctionSetting` satisfies it; a protocol, so that this module
    does not import the settings module, which imports this one.
    """

    @property
    def name(self) -> str: ...

    @property
    def n_servers(self) -> int: ...

    @property
    def bid_low(self) -> float: ...

    @property
    def bid_high(self) -> float: ...


@dataclass(frozen=True)
class Profiles:
    """A batch of type profiles, float64 arrays of shape (B, S).

    ``bids`` are the reported bids b (the true costs c when truthful); ``data_sizes`` (d_s) and
    ``emds`` (θ_s) are public and verifiable, so only the bid can be misreported.
    """

    bids: Array
    data_sizes: Array
    emds: Array

    def __post_init__(self) -> None:
        arrays = {
            "bids": as_batch("bids", self.bids),
            "data_sizes": as_batch("data_sizes", self.data_sizes),
            "emds": as_batch("emds", self.emds),
        }
        shape = arrays["bids"].shape
        for name, array in arrays.items():
            if array.shape != shape:
                raise ConfigError(name, f"shape {array.shape} differs from the bids' {shape}")
            object.__setattr__(self, name, array)
        if shape[1] == 0:
            raise ConfigError("bids", "a profile needs at least one edge server")
        if np.any(arrays["data_sizes"] < 0):
            raise ConfigError("data_sizes", "must be non-negative")
        if np.any(arrays["emds"] < 0):
            raise ConfigError("emds", "must be non-negative")

    @property
    def n_profiles(self) -> int:
        return int(self.bids.shape[0])

    @property
    def n_servers(self) -> int:
        return int(self.bids.shape[1])

    def with_bids(self, bids: Array) -> Profiles:
        """The same public data with other bids, of exactly the same shape (no broadcasting)."""
        bids = as_batch("bids", bids)
        if bids.shape != self.bids.shape:
            raise ConfigError("bids", f"shape {bids.shape} differs from the profiles' {self.shape}")
        return Profiles(bids, self.data_sizes, self.emds)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_profiles, self.n_servers)

    def take(self, rows: NDArray[np.int64] | slice) -> Profiles:
        """The profiles at ``rows`` (an index array or a slice)."""
        return Profiles(self.bids[rows], self.data_sizes[rows], self.emds[rows])

    def validate(self, setting: BidSpace) -> None:
        """Raise :class:`ConfigError` unless these profiles belong to ``setting``.

        Checks the number of edge servers (no broadcasting) and that every bid lies in the bid
        space V_s = [bid_low, bid_high]. NaN/inf and shapes were checked on construction.
        """
        if self.n_servers != setting.n_servers:
            raise ConfigError(
                "bids",
                f"profiles have {self.n_servers} edge servers but setting {setting.name!r} "
                f"has {setting.n_servers}",
            )
        low, high = float(self.bids.min()), float(self.bids.max())
        if low < setting.bid_low or high > setting.bid_high:
            raise ConfigError(
                "bids",
                f"bids span [{low:g}, {high:g}], outside the bid space "
                f"[{setting.bid_low:g}, {setting.bid_high:g}] of setting {setting.name!r}",
            )


@runtime_checkable
class Mechanism(Protocol):
    """A (possibly randomised) reverse auction (g, p) of section III-B."""

    name: str

    def outcome(self, profiles: Profiles) -> tuple[Array, Array]:
        """(z, p), each (B, S). z_s: win probability (single winner: Σ_s z_s ≤ 1) or inclusion
        probability (multi-winner). p_s: EXPECTED payment to ES s."""
        ...


def check_outcome(
    z: object, p: object, profiles: Profiles, multi_winner: bool, who: str = "mechanism"
) -> tuple[Array, Array]:
    """Return (z, p) as float64 arrays after checking shape, finiteness and feasibility."""
    z_arr = np.asarray(z, dtype=np.float64)
    p_arr = np.asarray(p, dtype=np.float64)
    for name, array in (("allocation", z_arr), ("payment", p_arr)):
        if array.shape != profiles.shape:
            raise ConfigError(
                f"{who}.{name}", f"shape {array.shape} differs from profiles {profiles.shape}"
            )
        if not np.all(np.isfinite(array)):
            raise ConfigError(f"{who}.{name}", "contains NaN or infinite values")
    if np.any(z_arr < -OUTCOME_TOL) or np.any(z_arr > 1 + OUTCOME_TOL):
        raise ConfigError(f"{who}.allocation", "probabilities must lie in [0, 1]")
    if not multi_winner and np.any(z_arr.sum(axis=1) > 1 + OUTCOME_TOL):
        raise ConfigError(f"{who}.allocation", "single-winner probabilities sum above 1")
    return z_arr, p_arr


def check_mechanism_setting(mechanism: Mechanism, setting: BidSpace) -> None:
    """A mechanism that records its setting (``.setting`` or ``.setting_name``) must match."""
    own = getattr(mechanism, "setting", None)
    own_name = getattr(own, "name", None) or getattr(mechanism, "setting_name", None)
    if isinstance(own_name, str) and own_name != setting.name:
        raise ConfigError(
            "setting",
            f"mechanism {mechanism.name!r} was built for setting {own_name!r}, "
            f"not {setting.name!r}",
        )


def es_utilities(z: Array, p: Array, costs: Array) -> Array:
    """u_s = p_s − z_s·c_s (M1), shape (B, S)."""
    return p - z * costs


def realise(
    z: Array, p: Array, multi_winner: bool, rng: np.random.Generator
) -> tuple[NDArray[np.bool_], Array]:
    """Run an outcome for real (M4): draw the winners from z, pay each winner p_s / z_s.

    Single winner: one categorical draw over the S servers plus "buy nothing" (prob. 1 − Σ z).
    Multi-winner: independent Bernoulli(z_s) draws. Returns (winners, payments), both (B, S).
    """
    z = np.clip(z, 0.0, 1.0)
    if multi_winner:
        winners = rng.random(z.shape) < z
    else:
        cumulative = np.cumsum(z, axis=1)
        draw = rng.random((z.shape[0], 1))
        index = (draw >= cumulative).sum(axis=1)  # == S means "buy nothing"
        winners = np.arange(z.shape[1])[None, :] == index[:, None]
    unit_pay = np.divide(p, z, out=np.zeros_like(p), where=z > 0)
    return winners, np.where(winners, unit_pay, 0.0)
