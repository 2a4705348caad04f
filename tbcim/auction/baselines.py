"""Baseline mechanisms beside RANet and the optima (section V-B, Fig. 11).

Greedy (lowest bids first, pay-as-bid):
  single winner: the lowest bid wins if it is at most the value V; it is paid its bid.       (G1)
  multi-winner: visit the ESs in increasing bid order; add ES s to the winner set T when its
  marginal value covers its bid, U_d(T ∪ {s}) − U_d(T) ≥ b_s; pay each winner its bid.       (G2)
  IR at truthful bids, but not truthful: a winner gains by overbidding.

Random (a random posted price, truthful and IR): draw P ~ U[b_low, b̄]; the ESs bidding at most P
are eligible. Single winner: one of them uniformly at random, paid P. Multi-winner: all of them,
each paid P. Expected z and p in closed form, with b_(1) ≤ … ≤ b_(S), b_(S+1) = b̄, R = b̄ − b_low:
  single: z_(r) = Σ_{k≥r} (b_(k+1) − b_(k))/(k·R),  p_(r) = Σ_{k≥r} (b_(k+1)² − b_(k)²)/(2kR)  (R1)
  multi:  z_s = (b̄ − b_s)/R,  p_s = (b̄² − b_s²)/(2R)                                   (R2)

No incentive: no auction and no surplus. Multi-winner: every ES is hired and reimbursed its
reported cost (z_s = 1, p_s = b_s); single winner: a uniformly random ES, reimbursed its reported
cost (z_s = 1/S, p_s = b_s/S). Truthful ESs earn u_s = 0, so nothing rewards truthful bidding or
participation: a rational ES bids b̄.                                                        (N1)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tbcim.auction.mechanism import Mechanism, Profiles
from tbcim.auction.myerson import Myerson
from tbcim.auction.settings import AuctionSetting
from tbcim.auction.utility import MAX_ENUMERATED_SERVERS
from tbcim.auction.vcg import VCG, CappedVCG, lowest_bid_wins, unit_value_setting

Array = NDArray[np.float64]


class Greedy:
    """Lowest bids first, pay-as-bid ((G1) single winner, (G2) multi-winner)."""

    name = "greedy"

    def __init__(self, setting: AuctionSetting) -> None:
        self.setting = setting
        if not setting.multi_winner:
            self.value = unit_value_setting(setting, "single-winner Greedy").value

    def outcome(self, profiles: Profiles) -> tuple[Array, Array]:
        profiles.validate(self.setting)
        bids = profiles.bids
        if not self.setting.multi_winner:
            z, _ = lowest_bid_wins(bids, self.value)
            return z, z * bids
        z = np.zeros_like(bids)
        rows = np.arange(profiles.n_profiles)
        current = self.setting.buyer_value(z, profiles)
        for column in np.argsort(bids, axis=1, kind="stable").T:
            trial = z.copy()
            trial[rows, column] = 1.0
            value = self.setting.buyer_value(trial, profiles)
            accept = value - current >= bids[rows, column]
            z[rows[accept], column[accept]] = 1.0
            current = np.where(accept, value, current)
        return z, z * bids


class RandomMechanism:
    """Random posted price P ~ U[b_low, b̄] in closed form ((R1) single, (R2) multi).

    The allocation z is the exact expectation over P; :func:`tbcim.auction.mechanism.realise`
    draws a concrete outcome with a seeded generator.
    """

    name = "random"

    def __init__(self, setting: AuctionSetting) -> None:
        self.setting = setting

    def outcome(self, profiles: Profiles) -> tuple[Array, Array]:
        profiles.validate(self.setting)
        low, high = self.setting.bid_low, self.setting.bid_high
        width = high - low
        bids = profiles.bids
        if self.setting.multi_winner:
            return (high - bids) / width, (high**2 - bids**2) / (2.0 * width)
        order = np.argsort(bids, axis=1, kind="stable")
        ordered = np.take_along_axis(bids, order, axis=1)
        upper = np.concatenate([ordered[:, 1:], np.full((bids.shape[0], 1), high)], axis=1)
        eligible = np.arange(1, bids.shape[1] + 1)[None, :]
        z_terms = (upper - ordered) / (eligible * width)
        p_terms = (upper**2 - ordered**2) / (2.0 * eligible * width)
        z_sorted = np.cumsum(z_terms[:, ::-1], axis=1)[:, ::-1]
        p_sorted = np.cumsum(p_terms[:, ::-1], axis=1)[:, ::-1]
        z = np.empty_like(bids)
        p = np.empty_like(bids)
        np.put_along_axis(z, order, z_sorted, axis=1)
        np.put_along_axis(p, order, p_sorted, axis=1)
        return z, p


class NoIncentive:
    """No auction: hire everybody (multi) or a uniform random ES (single) at reported cost (N1)."""

    name = "no-incentive"

    def __init__(self, setting: AuctionSetting) -> None:
        self.setting = setting

    def outcome(self, profiles: Profiles) -> tuple[Array, Array]:
        profiles.validate(self.setting)
        share = 1.0 if self.setting.multi_winner else 1.0 / profiles.n_servers
        z = np.full(profiles.shape, share)
        return z, z * profiles.bids


def get_baselines(setting: AuctionSetting) -> list[Mechanism]:
    """The analytic mechanisms that apply to ``setting`` (Myerson only where it is optimal)."""
    mechanisms: list[Mechanism] = []
    if not setting.multi_winner:
        mechanisms.append(Myerson(setting))
    if not setting.multi_winner or setting.n_servers <= MAX_ENUMERATED_SERVERS:
        mechanisms.append(VCG(setting))
        if setting.multi_winner:  # single winner: (V1) already has the reserve min(V, b̄)
            mechanisms.append(CappedVCG(setting))
    mechanisms.extend([Greedy(setting), RandomMechanism(setting), NoIncentive(setting)])
    return mechanisms
