"""Myerson's optimal procurement auction for the single-winner, unit-value setting.

Costs iid U[b_low, b̄] have the virtual cost J(c) = c + F(c)/f(c) = 2c − b_low (regular), so the
buyer-optimal truthful auction buys from the lowest virtual cost if J ≤ V, i.e. from the lowest
bid if it is at most the reserve

    r = min((V + b_low)/2, b̄),                                                        (MY1)

and pays the critical bid min(b_(2), r). With V = 1 and U[0, 1] this is r = 1/2, and the
expected buyer utility is (S1) of :func:`tbcim.auction.settings.myerson_optimal_buyer_utility`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tbcim.auction.mechanism import Profiles
from tbcim.auction.settings import AuctionSetting
from tbcim.auction.vcg import lowest_bid_wins, unit_value_setting

Array = NDArray[np.float64]


class Myerson:
    """Lowest bid wins below the reserve (MY1), paid its critical bid."""

    name = "myerson"

    def __init__(self, setting: AuctionSetting) -> None:
        unit = unit_value_setting(setting, "Myerson")
        self.setting = unit
        self.reserve = min((unit.value + unit.bid_low) / 2.0, unit.bid_high)

    def outcome(self, profiles: Profiles) -> tuple[Array, Array]:
        profiles.validate(self.setting)
        z, critical = lowest_bid_wins(profiles.bids, self.reserve)
        return z, z * critical[:, None]
