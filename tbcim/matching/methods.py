"""The six methods of section VI under one signature: ``run_method(name, market, rng)``."""

from __future__ import annotations

import numpy as np

from tbcim.errors import ConfigError
from tbcim.matching.baselines import hvpm, lcpm, rsbm
from tbcim.matching.foga import foga
from tbcim.matching.model import Matching, MatchingMarket, make_matching
from tbcim.matching.opt import opt, solve_assignment
from tbcim.matching.subopt import subopt

METHODS = ("Opt", "Subopt", "FOGA", "HVPM", "LCPM", "RSBM")


def run_method(
    name: str, market: MatchingMarket, rng: np.random.Generator, payments: bool = True
) -> Matching:
    """The matching of method ``name``; Opt and Subopt also compute their payments when
    ``payments`` is set (as timed in Table II), otherwise Opt only solves the MILP."""
    if name == "Opt":
        if payments:
            return opt(market).matching
        return make_matching(solve_assignment(market.preferences), market)
    if name == "Subopt":
        return subopt(market).matching
    if name == "FOGA":
        return foga(market, rng)
    if name == "HVPM":
        return hvpm(market, rng)
    if name == "LCPM":
        return lcpm(market)
    if name == "RSBM":
        return rsbm(market, rng)
    raise ConfigError("method", f"must be one of {METHODS}, got {name!r}")
