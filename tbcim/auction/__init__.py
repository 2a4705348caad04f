"""Upper level (section III): reverse auctions over edge servers, learned and analytic."""

from tbcim.auction.baselines import Greedy, NoIncentive, RandomMechanism, get_baselines
from tbcim.auction.mechanism import Mechanism, Profiles, es_utilities, realise
from tbcim.auction.myerson import Myerson
from tbcim.auction.settings import (
    SETTING_NAMES,
    AuctionSetting,
    TbcimSetting,
    UnitValueSetting,
    get_setting,
    load_setting_config,
)
from tbcim.auction.vcg import VCG

__all__ = [
    "SETTING_NAMES",
    "VCG",
    "AuctionSetting",
    "Greedy",
    "Mechanism",
    "Myerson",
    "NoIncentive",
    "Profiles",
    "RandomMechanism",
    "TbcimSetting",
    "UnitValueSetting",
    "es_utilities",
    "get_baselines",
    "get_setting",
    "load_setting_config",
    "realise",
]
