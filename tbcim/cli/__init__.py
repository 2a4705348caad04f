"""The ``tbcim`` command: one sub-command module per part of the market.

Each module in ``COMMANDS`` exposes ``register(subparsers)``, which adds its parser and sets
``handler`` (a function taking the parsed namespace and returning an exit status). Building the
parser is light: the sub-command modules import heavy libraries (torch, matplotlib, scipy's
solvers, web3) only inside the handlers that need them, so ``tbcim pricing`` never loads torch.
Input errors (:class:`tbcim.errors.TbcimError`) are printed as one clear line with exit status 2,
before any work starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tbcim.cli import auction, figures, fl, market, matching, pricing
from tbcim.errors import TbcimError

COMMANDS = (pricing, auction, matching, fl, market, figures)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tbcim", description="TBCIM: blockchain-aided edge FL service market."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except TbcimError as err:
        print(f"tbcim {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
