"""Shared fixtures for chain tests: a fresh embedded chain per test."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
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


ANVIL = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "anvil"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_anvil(*extra_args: str, accounts: int = 20) -> Iterator[str]:
    """A real anvil node on a free loopback port, stopped on exit."""
    if not ANVIL.exists():
        pytest.fail(f"anvil not found at {ANVIL}; run `make test` (it runs `npm ci`)")
    port = _free_port()
    proc = subprocess.Popen(
        [str(ANVIL), "--port", str(port), "--accounts", str(accounts), "--silent", *extra_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.1)
        else:
            pytest.fail("anvil did not start within 20 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def anvil_url() -> Iterator[str]:
    """A real anvil node on a free loopback port, stopped after the test."""
    with running_anvil() as url:
        yield url
