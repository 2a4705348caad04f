"""`tbcim pricing`: placeholder until its issue lands (owned by that issue's module)."""

from __future__ import annotations

import argparse

from tbcim.errors import TbcimError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pricing", help="(not built yet)")
    parser.set_defaults(handler=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    raise TbcimError("'tbcim pricing' is not built yet")
