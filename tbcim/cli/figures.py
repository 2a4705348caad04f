"""`tbcim figures`: every figure of both papers from fresh runs, each claim checked.

tbcim figures --out DIR [--fig NAME[,NAME...]] [--quick] [--seeds 0,1] [--jobs 2] | --list

Writes ``DIR/<name>.png`` and ``DIR/<name>.csv`` per figure, ``DIR/claims.json`` (one entry per
figure: paper, figure, claim, reproduced, measured, command) and ``DIR/figures.json`` (each
figure's time, seeds and machine). Bad arguments are rejected before any work starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tbcim.configfile import check_seeds, int_list
from tbcim.errors import ConfigError


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "figures",
        help="every figure of both papers from fresh runs, each claim checked",
        description="Remake TBCIM Figs. 5-12 and the second paper's Table II, Figs. 3-5 and "
        "Table III from fresh runs: PNG + CSV per figure, and DIR/claims.json saying for each "
        "whether our run reproduces the paper's claim, with the numbers.",
    )
    parser.add_argument("--out", type=Path, help="folder for the figures and claims.json")
    parser.add_argument(
        "--fig",
        type=_names,
        action="extend",
        default=[],
        metavar="NAME[,NAME]",
        help="only these figures (repeatable; see --list)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="reduced runs (2 seeds, fewer rounds and markets)"
    )
    parser.add_argument(
        "--seeds",
        type=int_list,
        default=None,
        metavar="S,S,...",
        help="test seeds (default 0,1 with --quick, else 0,1,2)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs (default 2)")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    parser.set_defaults(handler=_figures)


def _figures(args: argparse.Namespace) -> int:
    from tbcim.figures.registry import FIGURES, select

    if args.list:
        for f in FIGURES:
            print(f"{f.name:<12} {f.paper}, {f.figure}: {f.title}")
        return 0
    if args.out is None:
        raise ConfigError("--out", "is required (a folder for the figures and claims.json)")
    figures = select(tuple(args.fig))
    if args.seeds is not None:
        check_seeds(args.seeds)
    if args.jobs < 1:
        raise ConfigError("--jobs", f"must be >= 1, got {args.jobs}")
    from tbcim.figures.runner import run_figures

    claims = run_figures(figures, args.out, args.quick, args.seeds, args.jobs)
    return 0 if claims else 1
