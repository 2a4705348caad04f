"""Shared fixtures for chain tests: a fresh embedded chain per test."""

from __future__ import annotations

from pathlib import Path

import pytest

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
