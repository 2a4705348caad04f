"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[None]:
    """Ray's start-up, paid once per test session (the Flower engine's tests in any
    directory); one worker: on two shared cores one worker process starts faster than two,
    and a few EDs on digits train in well under a second."""
    from tbcim.fl.flower.engine import ray_session

    with ray_session(1):
        yield
