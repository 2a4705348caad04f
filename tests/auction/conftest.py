"""Shared fixtures for the auction-core tests: settings are built once per session."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import integrate

from tbcim.auction.settings import AuctionSetting, get_setting, tbcim_setting

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def single3() -> AuctionSetting:
    return get_setting("single-3")


@pytest.fixture(scope="session")
def tbcim3() -> AuctionSetting:
    return get_setting("tbcim-3")


@pytest.fixture(scope="session")
def small_tbcim() -> AuctionSetting:
    """A 3-ES TBCIM setting over a small pool (fast to build, same model as tbcim-3)."""
    return tbcim_setting(3, pool_size=400, pool_seed=7, name="tbcim-small")


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def myerson_by_quadrature(n: int, value: float = 1.0, low: float = 0.0, high: float = 1.0) -> float:
    """E[(V − J(c_(1)))^+], J(c) = 2c − low, by quadrature over the lowest of n U[low, high]."""
    width = high - low

    def integrand(c: float) -> float:
        density = n * ((high - c) / width) ** (n - 1) / width
        return max(0.0, value - (2 * c - low)) * density

    return integrate.quad(integrand, low, high, points=[(value + low) / 2], limit=200)[0]


@pytest.fixture(scope="session")
def myerson_quadrature() -> Callable[..., float]:
    """The independent oracle for Myerson's optimal buyer utility (numeric integration)."""
    return myerson_by_quadrature
