"""A light CLI: building the `tbcim` parser imports no heavy library.

Each case runs in a fresh interpreter (a subprocess), asks for a command's help, and reads
``sys.modules``: torch, matplotlib, web3 and scipy are imported only by the handlers that use
them, never to print a usage message.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "matplotlib", "web3", "scipy")

PROBE = """
import json, sys
from tbcim.cli import main
try:
    main({argv!r})
except SystemExit as stop:
    code = stop.code
else:
    code = None
print(json.dumps({{"code": code, "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _help(argv: list[str]) -> dict:
    probe = PROBE.format(argv=argv, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ["pricing", "--help"],
        ["--help"],
        ["auction", "train", "--help"],
        ["auction", "plot", "bids", "--help"],
        ["matching", "run", "--help"],
    ],
)
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    result = _help(argv)
    assert result["code"] == 0
    assert result["loaded"] == [], f"`tbcim {' '.join(argv)}` imported {result['loaded']}"


def test_the_probe_sees_a_heavy_import() -> None:
    """The check is not vacuous: a handler that needs torch does import it."""
    probe = PROBE.format(argv=["--help"], heavy=HEAVY).replace(
        "from tbcim.cli import main", "from tbcim.cli import main\nimport tbcim.auction.ranet.nets"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "torch" in json.loads(done.stdout.strip().splitlines()[-1])["loaded"]
