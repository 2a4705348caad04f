"""Shared fixtures for the FL tests: digits loaded once, torch on one thread."""

from __future__ import annotations

import pytest

from tbcim.fl.data import Dataset, load_digits_dataset
from tbcim.fl.model import configure_torch


@pytest.fixture(scope="session")
def digits() -> Dataset:
    configure_torch(1)
    return load_digits_dataset(seed=0)
