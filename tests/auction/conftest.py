"""Shared fixtures for the auction-core tests: settings are built once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
