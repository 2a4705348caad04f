"""`tbcim market`: the two-level market end to end, and its verification.

tbcim market run [--config FILE] [--rpc-url URL] [--engine local|flower] [--workers N] --out DIR
tbcim market run --resume DIR [--rpc-url URL] [--engine local|flower] [--workers N]
tbcim market verify DIR [--rpc-url URL]

``--engine flower`` trains on the Flower engine (issue 13; docs/market.md, "The Flower engine");
without ``--rpc-url`` the run starts its own anvil node and stops it at the end. A resumed run
uses the engine its folder recorded unless ``--engine`` says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from tbcim.cli.flags import engine_chain, engine_flags, flower_options
from tbcim.errors import ConfigError

if TYPE_CHECKING:
    from tbcim.fl.flower.engine import FlowerOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "market",
        help="the market end to end: sealed-bid auction, BCFL, settlement on chain",
        description="Consecutive FL tasks through the market contract (TBCIM section II-A).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser(
        "run",
        help="run a market of consecutive tasks into a run folder",
        description="Publish, price, bid (commit-reveal), award, accept, train on chain, attest "
        "and settle each task; writes summary.json, CSV, PNG and the chain's records to --out.",
    )
    run.add_argument("--config", help="TOML with [market], [fl], [chain], [failure], [selection]")
    run.add_argument("--rpc-url", help="Ethereum JSON-RPC node (default: embedded py-evm)")
    run.add_argument("--out", help="run folder to create")
    run.add_argument("--resume", metavar="DIR", help="continue the stopped run in DIR")
    engine_flags(run, engine_default=None)
    run.add_argument(
        "--retrain",
        action="store_true",
        help="train the learned mechanism afresh (configs/<mechanism>/tbcim-<S>.toml, the "
        "run's seed) into DIR/mechanism.pt instead of reading the shipped model",
    )
    run.set_defaults(handler=_run)
    verify = verbs.add_parser(
        "verify",
        help="recompute every award from chain data and compare with the recorded one",
    )
    verify.add_argument("folder", help="a market run folder")
    verify.add_argument("--rpc-url", help="read the logs from this node (default: the folder's)")
    verify.set_defaults(handler=_verify)


def _run(args: argparse.Namespace) -> int:
    from tbcim.market.config import MarketConfig
    from tbcim.market.folder import RunFolder

    if args.resume and (args.out or args.config or args.retrain):
        raise ConfigError(
            "--resume", "takes the config and folder of the run; drop --out/--config/--retrain"
        )
    if args.resume:
        saved = RunFolder.saved(args.resume)  # read only: the flags are checked first
        config = MarketConfig.from_dict(saved["config"])
        engine, workers = saved["engine"]["name"], saved["engine"]["workers"]
        if args.engine not in (None, engine):
            raise ConfigError(
                "--engine",
                f"the run in {args.resume} trained on the {engine} engine and a resume replays "
                "it on that engine (the engines' EDs hold different accounts, which g_e sees): "
                "drop --engine",
            )
        workers = workers if args.workers is None else args.workers
        flower = flower_options(engine, workers, config.training.run.fl.attack)
        folder, _ = RunFolder.resume(args.resume, _engine_record(flower))
        setup = None
        print(
            f"resuming {folder.path} on the {engine} engine: replaying {len(folder.recorded)} "
            "recorded steps"
        )
    else:
        if not args.out:
            raise ConfigError("--out", "name the run folder to write")
        config = MarketConfig.load(args.config)  # validated before any work
        flower = flower_options(args.engine or "local", args.workers, config.training.run.fl.attack)
        from tbcim.market.outcome import retrain
        from tbcim.market.run import prepare_market

        if args.retrain:
            from pathlib import Path

            model = Path(args.out) / "mechanism.pt"
            if (Path(args.out) / "progress.json").exists():
                raise ConfigError("--out", f"{args.out} holds a run already")
            print(f"training {config.terms.mechanism} for {config.servers} ESs afresh ...")
            retrain(config.terms.mechanism, config.servers, config.seed, model)
            terms = dataclasses.replace(config.terms, model=str(model.resolve()))
            config = dataclasses.replace(config, terms=terms)
        setup = prepare_market(config)  # the mechanism, the candidates, the partition
        folder = RunFolder.create(
            args.out, config.to_dict(), config.seed, args.config, _engine_record(flower)
        )
    from tbcim.market.report import summary_table
    from tbcim.market.run import run_market

    with engine_chain(args.rpc_url, flower is not None, config.servers) as url:
        summary = run_market(
            config,
            folder,
            url,
            log=lambda line: print(line, flush=True),
            setup=setup,
            flower=flower,
        )
    print()
    print(summary_table(summary))
    print(
        f"\nreconciled to the wei: {summary['reconciled']}; results in {folder.path}/ "
        "(summary.json, tasks.csv, bids.csv, rounds.csv, ed_payments.csv, accuracy.png, "
        "payments.png, chain/)"
    )
    sys.stdout.flush()
    return 0


def _engine_record(flower: FlowerOptions | None) -> dict[str, Any]:
    """What the run folder records of the engine (tbcim/market/folder.py)."""
    from tbcim.market.folder import LOCAL_ENGINE

    return dict(LOCAL_ENGINE) if flower is None else {"name": "flower", "workers": flower.workers}


def _verify(args: argparse.Namespace) -> int:
    from tbcim.market.verify import verify_run

    checks = verify_run(args.folder, args.rpc_url)
    for check in checks:
        state = "matches" if check.ok else "MISMATCH"
        print(f"task {check.task_id}: recorded outcome {state} the recomputed one")
        for problem in check.problems:
            print(f"  - {problem}")
    ok = all(c.ok for c in checks)
    print("verified: every award is the mechanism's outcome" if ok else "verification FAILED")
    return 0 if ok else 1
