"""Shared fixtures for chain tests: a fresh embedded chain per test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain_node.anvil import AnvilNotFoundError
from chain_node.anvil import running_anvil as anvil_node
from chain_node.compiler import ContractArtifact, compile_contracts
from chain_node.node import ChainNode

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def counter_artifacts() -> dict[str, ContractArtifact]:
    return compile_contracts(FIXTURES)


@pytest.fixture
def counter_node(counter_artifacts: dict[str, ContractArtifact]) -> ChainNode:
    node = ChainNode.embedded(n_servers=3, n_devices=4, revenues=[5.0, 3.0, 2.0], seed=1)
    node.use_artifacts(counter_artifacts)
    return node


@contextlib.contextmanager
def running_anvil(*extra_args: str, accounts: int = 20) -> Iterator[str]:
    """A real anvil node on a free loopback port, stopped on exit (fails the test if absent)."""
    try:
        with anvil_node(*extra_args, accounts=accounts) as url:
            yield url
    except AnvilNotFoundError as err:
        pytest.fail(str(err))


@pytest.fixture
def anvil_url() -> Iterator[str]:
    """A real anvil node on a free loopback port, stopped after the test."""
    with running_anvil() as url:
        yield url
