"""Deprecated name of :mod:`tbcim.lower.pricing` (renamed so that "market" names one thing).

Kept for one release; import from :mod:`tbcim.lower.pricing` instead.
"""

import warnings

from tbcim.lower.pricing import PricedMarket, price_market, server_types

warnings.warn(
    "tbcim.lower.market is renamed tbcim.lower.pricing; the old name goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["PricedMarket", "price_market", "server_types"]
