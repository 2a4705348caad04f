"""`tbcim matching`: the second paper's FL service market (Opt, Subopt and the baselines).

tbcim matching run --buyers 8 --data-sellers 12 --uav-sellers 10 --method subopt --json FILE
tbcim matching experiment table2|fig3|fig4|fig5|all --out DIR [--seeds 0,1,2] [--instances K]

Several ``--seeds`` give the mean and sample std over the seeds (tbcim.matching.experiments).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tbcim.cli.flags import output_file, seeds_flag
from tbcim.configfile import check_seeds
from tbcim.errors import ConfigError
from tbcim.matching.experiments import EXPERIMENTS
from tbcim.matching.methods import METHODS, run_method
from tbcim.matching.opt import SPLITS as OPT_SPLITS
from tbcim.matching.opt import opt
from tbcim.matching.scenario import generate
from tbcim.matching.subopt import PAYMENT_RULES, subopt
from tbcim.matching.subopt import SPLITS as SUBOPT_SPLITS
from tbcim.results import write_json
from tbcim.seeding import seed_everything

#: The file that the deprecated ``matching run --out DIR`` wrote into DIR.
RUN_FILE = "matching_run.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "matching", help="multi-buyer FL service market: Opt (MILP+VCG), Subopt, baselines"
    )
    sub = parser.add_subparsers(dest="matching_command", required=True)
    run = sub.add_parser("run", help="run one method on one random market (section VI-A)")
    run.add_argument("--buyers", type=int, default=8)
    run.add_argument("--data-sellers", type=int, default=12)
    run.add_argument("--uav-sellers", type=int, default=10)
    run.add_argument("--method", choices=[m.lower() for m in METHODS], default="subopt")
    run.add_argument("--payment", choices=PAYMENT_RULES, default="critical", help="Subopt only")
    run.add_argument(
        "--split", choices=sorted({*OPT_SPLITS, *SUBOPT_SPLITS}), default="proportional"
    )
    run.add_argument("--seed", type=int, default=0)
    output_file(
        run,
        "--json",
        "result JSON to write",
        required=True,
        old="--out",
        convert_old=lambda folder: str(Path(folder) / RUN_FILE),
    )
    run.set_defaults(handler=_run)
    exp = sub.add_parser("experiment", help="reproduce Table II, Fig. 3, Fig. 4/Table III, Fig. 5")
    exp.add_argument("name", choices=[*EXPERIMENTS, "all"])
    exp.add_argument("--out", type=Path, required=True)
    seeds_flag(exp)
    exp.add_argument("--instances", type=int, default=None, help="markets per point")
    exp.set_defaults(handler=_experiment)


def _run(args: argparse.Namespace) -> int:
    method = next(m for m in METHODS if m.lower() == args.method)
    if method == "Opt" and args.split not in OPT_SPLITS:
        raise ConfigError("split", f"Opt supports {OPT_SPLITS}, got {args.split!r}")
    if method == "Subopt" and args.split not in SUBOPT_SPLITS:
        raise ConfigError("split", f"Subopt supports {SUBOPT_SPLITS}, got {args.split!r}")
    rng = seed_everything(args.seed)
    market = generate(args.buyers, args.data_sellers, args.uav_sellers, rng)
    payload: dict[str, object] = {
        "method": method,
        "seed": args.seed,
        "buyers": args.buyers,
        "data_sellers": args.data_sellers,
        "uav_sellers": args.uav_sellers,
    }
    if method in ("Opt", "Subopt"):
        if method == "Opt":
            outcome = opt(market, split=args.split)
        else:
            outcome = subopt(market, payment=args.payment, split=args.split)
        matching = outcome.matching
        payload.update(
            payment=args.payment if method == "Subopt" else "vcg",
            split=args.split,
            pair_payments=outcome.pair_payments,
            data_payments=outcome.data_payments,
            uav_payments=outcome.uav_payments,
        )
    else:
        matching = run_method(method, market, rng)
    payload.update(
        triples=matching.triples,
        revenue=matching.revenue,
        unmatched_buyers=matching.unmatched_buyers,
    )
    path = write_json(args.json, payload)
    print(
        f"{method}: {len(matching.triples)} winners, revenue {matching.revenue:.4f}, "
        f"unmatched buyers {matching.unmatched_buyers} -> {path}"
    )
    return 0


def _experiment(args: argparse.Namespace) -> int:
    if args.instances is not None and args.instances < 1:
        raise ConfigError("instances", f"must be a positive integer, got {args.instances}")
    check_seeds(args.seeds)
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    for name in names:
        kwargs = {} if args.instances is None or name == "fig5" else {"instances": args.instances}
        EXPERIMENTS[name](args.out, args.seeds, **kwargs)
        print(f"{name}: written to {args.out}")
    return 0
