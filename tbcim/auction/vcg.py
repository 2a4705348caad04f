"""VCG: the welfare-maximising truthful reverse auction (section III, MODEL-NOTES §2).

Single winner (unit value V): a reverse Vickrey auction with reserve r = min(V, b̄). The lowest
bid wins if it is at most r and is paid the critical bid

    p = min(b_(2), r)          (b_(2) the second-lowest bid, +∞ when S = 1)              (V1)

Multi-winner (TBCIM): the exact welfare-maximising winner set over all 2^S subsets,

    T* = argmax_T  W(T),   W(T) = U_d(T) − Σ_{s∈T} b_s      (U_d(T) of (U3), W(∅) = 0)   (V2)

with Clarke payments p_s = b_s + W(T*) − max_{T ∌ s} W(T) for s ∈ T*, 0 otherwise.       (V3)

Ties go to the subset with the smallest binary code (the empty set first); Clarke payments are
truthful for any fixed tie rule. U_d(T) depends on public data only, so it is computed once per
distinct (d, θ) row: a misreport grid repeats each profile's public data, which keeps the exact
enumeration cheap for the regret evaluator.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tbcim.auction.mechanism import Profiles
from tbcim.auction.settings import AuctionSetting, TbcimSetting, UnitValueSetting
from tbcim.auction.utility import (
    MAX_ENUMERATED_SERVERS,
    subset_masks,
    subset_values,
    unique_rows,
)
from tbcim.errors import ConfigError

Array = NDArray[np.float64]

#: Cap on the (rows × subsets) welfare table held in memory at once.
MAX_TABLE_ENTRIES = 2**21


def lowest_bid_wins(bids: Array, reserve: float) -> tuple[Array, Array]:
    """Lowest bid wins if ≤ ``reserve`` (ties: lowest index); returns (z, critical bid (V1))."""
    n_profiles, n_servers = bids.shape
    winner = np.argmin(bids, axis=1)
    rows = np.arange(n_profiles)
    lowest = bids[rows, winner]
    no_rival = np.full(n_profiles, np.inf)
    second = np.partition(bids, 1, axis=1)[:, 1] if n_servers > 1 else no_rival
    z = np.zeros_like(bids)
    z[rows, winner] = (lowest <= reserve).astype(np.float64)
    critical = np.minimum(second, reserve)
    return z, critical


def unit_value_setting(setting: AuctionSetting, mechanism: str) -> UnitValueSetting:
    """``setting`` if it is a single-winner unit-value setting, else a ConfigError."""
    if not isinstance(setting, UnitValueSetting):
        raise ConfigError("setting", f"{mechanism} needs a single-winner unit-value setting")
    return setting


def best_without_each(welfare: Array, n_servers: int) -> Array:
    """max_{T ∌ s} W(T) for every s, shape (n, S), from the table W (n, 2^S) of (V2).

    Column k has bit s of k set iff s ∈ T. Split k into its high and low bits (k = h·2^L + l):
    for a high bit s the answer is the max over h without s of max_l W[h, l], for a low bit
    the max over l without s of max_h W[h, l]; two passes over the table instead of S.
    """
    n = welfare.shape[0]
    low_bits = n_servers // 2
    table = welfare.reshape(n, 2 ** (n_servers - low_bits), 2**low_bits)
    by_high = table.max(axis=2)  # (n, 2^H): best over the low bits
    by_low = table.max(axis=1)  # (n, 2^L): best over the high bits
    columns = []
    for s in range(n_servers):
        part, bit = (by_low, s) if s < low_bits else (by_high, s - low_bits)
        columns.append(part.reshape(n, -1, 2, 2**bit)[:, :, 0, :].max(axis=(1, 2)))
    return np.stack(columns, axis=1)


class VCG:
    """VCG with reserve (single winner, (V1)) or exact enumeration + Clarke (multi, (V2)–(V3))."""

    name = "vcg"

    def __init__(self, setting: AuctionSetting) -> None:
        self.setting = setting
        if setting.multi_winner:
            if not isinstance(setting, TbcimSetting):
                raise ConfigError("setting", "multi-winner VCG needs a TBCIM setting")
            if setting.n_servers > MAX_ENUMERATED_SERVERS:
                raise ConfigError(
                    "n_servers",
                    f"exact VCG enumerates 2^S sets; S <= {MAX_ENUMERATED_SERVERS} supported",
                )
        else:
            unit = unit_value_setting(setting, "single-winner VCG")
            self.reserve = min(unit.value, unit.bid_high)

    def outcome(self, profiles: Profiles) -> tuple[Array, Array]:
        profiles.validate(self.setting)
        if not self.setting.multi_winner:
            z, critical = lowest_bid_wins(profiles.bids, self.reserve)
            return z, z * critical[:, None]
        return self._multi_winner(profiles)

    def _multi_winner(self, profiles: Profiles) -> tuple[Array, Array]:
        assert isinstance(self.setting, TbcimSetting)
        n_servers = profiles.n_servers
        masks = subset_masks(n_servers)
        (sizes, emds), inverse = unique_rows(profiles.data_sizes, profiles.emds)
        values = subset_values(sizes, emds, self.setting.quality)
        z = np.zeros(profiles.shape)
        p = np.zeros(profiles.shape)
        step = max(1, MAX_TABLE_ENTRIES // masks.shape[0])
        for start in range(0, profiles.n_profiles, step):
            rows = slice(start, start + step)
            bids = profiles.bids[rows]
            welfare = np.take(values, inverse[rows], axis=0)
            welfare -= bids @ masks.T
            best = np.argmax(welfare, axis=1)
            best_welfare = welfare[np.arange(best.size), best]
            welfare_without = best_without_each(welfare, n_servers)
            z[rows] = masks[best]
            p[rows] = z[rows] * (bids + best_welfare[:, None] - welfare_without)
        return z, p


class CappedVCG(VCG):
    """VCG with a reserve at the top of the bid space b̄ (issue 12): each winner is paid

        p_s = z_s·min(b_s + W(T*) − max_{T∌s} W(T), b̄).                                 (V4)

    Clarke's payment (V3) is the critical bid of a welfare-maximising allocation; when it exceeds
    b̄ the ES wins at every bid in V_s = [b_low, b̄], and the threshold payment over V_s is b̄. So
    (V4) is VCG's allocation with the threshold payment restricted to the bid space: truthful and
    IR on V_s, as RANet's payments are, which are capped at b̄ too. Single winner: (V1) already
    has the reserve min(V, b̄), so the cap changes nothing there.
    """

    name = "capped-vcg"

    def outcome(self, profiles: Profiles) -> tuple[Array, Array]:
        z, p = super().outcome(profiles)
        return z, np.minimum(p, z * self.setting.bid_high)
