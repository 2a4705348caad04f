"""A local anvil node (npm ``@foundry-rs/anvil-linux-amd64``): a real external EVM node.

:func:`running_anvil` starts one on a free loopback port and stops it on exit. Tests use it to
check that the contracts behave the same on a second EVM; benchmarks use it because it executes
far faster than the embedded py-evm.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from chain_node.errors import ChainError

ANVIL = Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "anvil"
START_TIMEOUT_S = 20.0


class AnvilNotFoundError(ChainError):
    """The anvil binary is missing; the message says how to install it."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_anvil(*extra_args: str, accounts: int = 20) -> Iterator[str]:
    """Yield the URL of a fresh anvil node with ``accounts`` funded accounts."""
    with anvil_process(*extra_args, accounts=accounts) as (url, _):
        yield url


@contextlib.contextmanager
def anvil_process(
    *extra_args: str, accounts: int = 20
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yield the URL and the process of a fresh anvil node (a test may kill the process to
    see a chain stop answering)."""
    if not ANVIL.exists():
        raise AnvilNotFoundError(f"anvil not found at {ANVIL}; run `make setup` (it runs `npm ci`)")
    port = _free_port()
    proc = subprocess.Popen(
        [str(ANVIL), "--port", str(port), "--accounts", str(accounts), "--silent", *extra_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise ChainError(f"anvil did not start within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
