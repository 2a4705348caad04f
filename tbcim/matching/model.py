"""The multi-buyer FL service market of the second paper (rebuilt from its fragment).

Participants: buyers l ∈ L (FL tasks), data-sellers m ∈ M and UAV-sellers n ∈ N (relays).

* Buyer l values any seller pair at v_l = α1_l·log(1 + α2·d_l) (section VI-A).
* Data-seller m bids ``data_bids[l, m]`` (its cost of selling data to buyer l).
* UAV-seller n bids ``uav_bids[l, m, n]`` (its cost of relaying buyer l's model from
  data-seller m; the link rate depends on m).
* A seller pair (m, n) serving buyer l has the joint bid J_{l,m,n} = data_bids[l, m] +
  uav_bids[l, m, n] and the preference value R_{l,m,n} = v_l − J_{l,m,n} (22).
* Constraints (10b)–(10e): each buyer gets at most one pair, each data-seller and each
  UAV-seller sells at most once, triples with R < 0 are dropped (R = 0 is kept; it ties the
  virtual NULL seller pair).

Arrays are indexed buyer-first: shapes (L,), (L, M) and (L, M, N).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tbcim.errors import ConfigError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def _checked(name: str, values: object, ndim: int) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim:
        raise ConfigError(name, f"must be a {ndim}-d array, got shape {array.shape}")
    if array.size and not np.all(np.isfinite(array)):
        raise ConfigError(name, "must be finite (no NaN or inf)")
    if array.size and np.any(array < 0):
        raise ConfigError(name, f"must be non-negative, got minimum {array.min():g}")
    return array


@dataclass(frozen=True)
class MatchingMarket:
    """Reported bids and buyer valuations, validated on construction (errors name the field)."""

    valuations: FloatArray
    data_bids: FloatArray
    uav_bids: FloatArray

    def __post_init__(self) -> None:
        v = _checked("valuations", self.valuations, 1)
        d = _checked("data_bids", self.data_bids, 2)
        u = _checked("uav_bids", self.uav_bids, 3)
        for name, count in (("buyers", v.shape[0]), ("data_sellers", d.shape[1])):
            if count == 0:
                raise ConfigError(name, "must not be empty")
        if u.shape[2] == 0:
            raise ConfigError("uav_sellers", "must not be empty")
        if d.shape[0] != v.shape[0]:
            raise ConfigError("data_bids", f"shape {d.shape} must be (buyers={v.shape[0]}, M)")
        if u.shape[:2] != d.shape:
            raise ConfigError("uav_bids", f"shape {u.shape} must be (L, M, N), (L, M) = {d.shape}")
        object.__setattr__(self, "valuations", v)
        object.__setattr__(self, "data_bids", d)
        object.__setattr__(self, "uav_bids", u)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(buyers L, data-sellers M, UAV-sellers N)."""
        return self.uav_bids.shape  # type: ignore[return-value]

    @property
    def joint_bids(self) -> FloatArray:
        """J_{l,m,n} = data bid + UAV bid, shape (L, M, N)."""
        return self.data_bids[:, :, None] + self.uav_bids

    @property
    def preferences(self) -> FloatArray:
        """R_{l,m,n} = v_l − J_{l,m,n} (22), shape (L, M, N)."""
        return self.valuations[:, None, None] - self.joint_bids

    def with_joint_bid(self, triple: tuple[int, int, int], joint_bid: float) -> MatchingMarket:
        """The market where the pair of ``triple`` reports ``joint_bid`` to its buyer.

        The change is put on the UAV bid of that one triple (the data bid is shared with the
        data-seller's other pairs); a negative UAV bid is allowed here because only the sum
        matters for the pair, so the pair's joint bid can be swept over any grid.
        """
        buyer, m, n = triple
        uav = self.uav_bids.copy()
        uav[buyer, m, n] = joint_bid - self.data_bids[buyer, m]
        return _unchecked_market(self.valuations, self.data_bids, uav)

    def with_seller_shift(self, seller: SellerRef, buyer: int, shift: float) -> MatchingMarket:
        """The market where ``seller`` adds ``shift`` to all of its bids to ``buyer``.

        For a data-seller m this changes data_bids[l, m] (its single bid to that buyer);
        for a UAV-seller n it shifts uav_bids[l, :, n] (its bids for every partner).
        """
        data, uav = self.data_bids.copy(), self.uav_bids.copy()
        if seller.kind == "data":
            data[buyer, seller.index] += shift
        else:
            uav[buyer, :, seller.index] += shift
        return _unchecked_market(self.valuations, data, uav)


def _unchecked_market(valuations: FloatArray, data: FloatArray, uav: FloatArray) -> MatchingMarket:
    """A MatchingMarket for what-if deviations (bids may go negative); shapes are already valid."""
    market = object.__new__(MatchingMarket)
    object.__setattr__(market, "valuations", valuations)
    object.__setattr__(market, "data_bids", data)
    object.__setattr__(market, "uav_bids", uav)
    return market


@dataclass(frozen=True)
class SellerRef:
    """One seller: ``kind`` is "data" or "uav", ``index`` its position in M or N."""

    kind: str
    index: int

    def __post_init__(self) -> None:
        if self.kind not in ("data", "uav"):
            raise ConfigError("seller.kind", f"must be 'data' or 'uav', got {self.kind!r}")


@dataclass(frozen=True)
class Matching:
    """Winning triples (rows (buyer, m, n)) and the buyers' total revenue F = Σ R (9)."""

    triples: IntArray
    revenue: float
    shape: tuple[int, int, int]

    @property
    def unmatched_buyers(self) -> list[int]:
        """Buyers without a seller pair (matched to the NULL pair)."""
        matched = set(self.triples[:, 0].tolist())
        return [b for b in range(self.shape[0]) if b not in matched]

    def pair_of(self, buyer: int) -> tuple[int, int] | None:
        """The (data-seller, UAV-seller) pair serving ``buyer``, or None."""
        rows = self.triples[self.triples[:, 0] == buyer]
        return None if rows.size == 0 else (int(rows[0, 1]), int(rows[0, 2]))


def make_matching(
    triples: list[tuple[int, int, int]] | IntArray, market: MatchingMarket
) -> Matching:
    """A Matching from winning triples, sorted by buyer; revenue recomputed exactly from R."""
    rows = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    prefs = market.preferences
    revenue = float(prefs[rows[:, 0], rows[:, 1], rows[:, 2]].sum()) if rows.size else 0.0
    return Matching(triples=rows, revenue=revenue, shape=market.shape)


@dataclass(frozen=True)
class Outcome:
    """A mechanism's result: the matching and the payments (zero for losers).

    ``pair_payments[i]`` is the total payment P to the pair of ``matching.triples[i]``;
    ``data_payments[m]`` and ``uav_payments[n]`` are the amounts each seller receives.
    """

    matching: Matching
    pair_payments: FloatArray
    data_payments: FloatArray
    uav_payments: FloatArray
    details: dict[str, object] = field(default_factory=dict)

    def pair_utilities(self, true_market: MatchingMarket) -> FloatArray:
        """U = P − J(true costs) for each winning pair (27)."""
        t = self.matching.triples
        return self.pair_payments - true_market.joint_bids[t[:, 0], t[:, 1], t[:, 2]]

    def seller_utility(self, seller: SellerRef, true_market: MatchingMarket) -> float:
        """Payment received minus the true cost of what the seller sold (0 if it sold nothing)."""
        t = self.matching.triples
        if seller.kind == "data":
            rows = t[t[:, 1] == seller.index]
            cost = true_market.data_bids[rows[:, 0], rows[:, 1]].sum()
            return float(self.data_payments[seller.index] - cost)
        rows = t[t[:, 2] == seller.index]
        cost = true_market.uav_bids[rows[:, 0], rows[:, 1], rows[:, 2]].sum()
        return float(self.uav_payments[seller.index] - cost)
