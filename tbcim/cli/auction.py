"""`tbcim auction`: train, evaluate and plot RANet, the learned reverse auction (section III).

    tbcim auction train --setting NAME [--mechanism ranet|ranet-exact] [--config FILE] [--seed N]
                        [--preset quick|paper|smoke] --model MODEL [--checkpoint FILE [--resume]]
    tbcim auction eval  --model MODEL [--samples N] [--seed N] [--setting NAME] --json OUT
    tbcim auction plot training --model MODEL [--model MODEL ...] --png FIG6.png
    tbcim auction plot bids --model MODEL [--server S] [--cost C] [--samples N] [--seeds 0,1,2]
                            --png FIG7.png

``eval`` and ``plot bids`` read a model file of either learner (``tbcim.auction.registry``).

Everything the user gives is validated before any training or evaluation starts. Building the
parser imports no torch or matplotlib: the handlers import the learners and figures they use.
"""

from __future__ import annotations

import argparse
import json

from tbcim.auction.ranet.config import read_config_file
from tbcim.auction.settings import SETTING_NAMES, get_setting, setting_from_dict
from tbcim.cli.flags import output_file, seeds_flag
from tbcim.configfile import check_seeds, keyed
from tbcim.errors import ConfigError
from tbcim.results import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "auction", help="RANet: train, evaluate and plot the learned reverse auction"
    )
    commands = parser.add_subparsers(dest="auction_command", required=True)

    tr = commands.add_parser("train", help="train RANet (Algorithm 1) and save the mechanism")
    tr.add_argument("--setting", required=True, help=f"base setting, one of {SETTING_NAMES}")
    tr.add_argument("--config", help="TOML/JSON with optional [setting] and [train] tables")
    # The learners and their presets are checked in the handler (tbcim.auction.registry), which
    # imports torch; an unknown name is an error that lists the choices.
    tr.add_argument("--mechanism", default="ranet", help="learner: ranet (default) or ranet-exact")
    tr.add_argument(
        "--preset", default="quick", help="the learner's training preset (default: quick)"
    )
    tr.add_argument("--seed", type=int, default=0)
    output_file(tr, "--model", "model file to write", required=True, old="--out")
    tr.add_argument("--checkpoint", help="training checkpoint written after every epoch")
    tr.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    tr.set_defaults(handler=_train)

    ev = commands.add_parser("eval", help="evaluate a trained model on held-out profiles")
    ev.add_argument("--model", required=True)
    ev.add_argument("--json", required=True, help="result JSON to write")
    ev.add_argument("--samples", type=int, default=10_000, help="held-out profiles")
    ev.add_argument("--seed", type=int, default=0, help="seed of the held-out profiles")
    ev.add_argument("--setting", help="fail unless the model was trained for this setting")
    ev.add_argument("--grid-points", type=int, default=201)
    ev.add_argument("--refine-steps", type=int, default=20)
    ev.add_argument("--no-baselines", action="store_true")
    ev.set_defaults(handler=_eval)

    plot = commands.add_parser("plot", help="Fig. 6 (training curves) or Fig. 7 (bid response)")
    figures = plot.add_subparsers(dest="figure", required=True)
    f6 = figures.add_parser("training", help="Fig. 6: buyer utility and regret over training")
    f6.add_argument("--model", required=True, action="append", help="repeat for several models")
    output_file(f6, "--png", "PNG to write (its CSV beside it)", required=True, old="--out")
    f6.set_defaults(handler=_plot_training)
    f7 = figures.add_parser("bids", help="Fig. 7: win probability and utility against the bid")
    f7.add_argument("--model", required=True)
    output_file(f7, "--png", "PNG to write (CSV and JSON beside it)", required=True, old="--out")
    f7.add_argument("--server", type=int, default=0, help="index of the ES that varies its bid")
    f7.add_argument("--cost", type=float, help="its true cost (default: a quarter up the range)")
    f7.add_argument("--samples", type=int, default=2_000, help="profiles of the other ESs")
    f7.add_argument("--points", type=int, default=101, help="bids on the grid")
    seeds_flag(f7)
    f7.set_defaults(handler=_plot_bids)


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(name, f"must be a positive integer, got {value}")


def _train(args: argparse.Namespace) -> int:
    from tbcim.auction.registry import save_learned, train_learned, training_config

    training_config(args.mechanism, {}, args.preset)  # the flags, named as flags
    setting_overrides, train_options = read_config_file(args.config) if args.config else ({}, {})
    if "base" in setting_overrides:
        raise ConfigError("setting.base", "give the base setting with --setting, not in the file")
    get_setting(args.setting)  # an unknown --setting is named as such, not as a table key
    spec = {"base": args.setting, **setting_overrides}
    with keyed("setting"):
        setting = setting_from_dict(spec)
    with keyed("train"):
        config = training_config(args.mechanism, train_options, args.preset)
    if args.resume and not args.checkpoint:
        raise ConfigError("resume", "needs --checkpoint")
    print(
        f"training {args.mechanism} on {setting.name} ({args.preset} preset, seed {args.seed}): "
        f"{config}"
    )
    result = train_learned(
        args.mechanism,
        setting,
        config,
        args.seed,
        checkpoint_path=args.checkpoint,
        resume=args.resume,
    )
    save_learned(args.model, result, spec)
    print(
        f"saved {args.model} (epoch {result.selected_epoch} selected, "
        f"{result.train_seconds:.0f} s of training)"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tbcim.auction.registry import evaluate_learned, load_learned

    _positive("samples", args.samples)
    model, meta = load_learned(args.model, get_setting(args.setting) if args.setting else None)
    result = evaluate_learned(
        model,
        args.samples,
        args.seed,
        baselines=not args.no_baselines,
        grid_points=args.grid_points,
        refine_steps=args.refine_steps,
    )
    result.update(
        model=str(args.model),
        train_seed=meta["seed"],
        selected_epoch=meta["selected_epoch"],
        train_seconds=meta["train_seconds"],
    )
    write_json(args.json, result)
    shown = {k: result[k] for k in ("buyer_utility", "regret_mean", "regret_max", "monotone")}
    print(f"{model.setting.name}: {json.dumps(shown)} -> {args.json}")
    return 0


def _plot_training(args: argparse.Namespace) -> int:
    from tbcim.auction.figures import plot_training
    from tbcim.auction.ranet.checkpoint import load_model

    histories, optimum, selected = {}, {}, {}
    for path in args.model:
        model, meta = load_model(path)
        label = model.setting.name if model.setting.name not in histories else str(path)
        histories[label] = meta["history"]
        optimum[label] = model.setting.optimal_buyer_utility
        selected[label] = meta["selected_epoch"]
    png, csv = plot_training(histories, args.png, optimum, selected)
    print(f"wrote {png} and {csv}")
    return 0


def _plot_bids(args: argparse.Namespace) -> int:
    from tbcim.auction.figures import bid_response, plot_bid_response
    from tbcim.auction.registry import load_learned

    _positive("samples", args.samples)
    check_seeds(args.seeds)
    model, _ = load_learned(args.model)
    rows, summary = bid_response(
        model, args.server, args.cost, args.samples, args.points, args.seeds
    )
    png, csv, summary_path = plot_bid_response(rows, summary, args.png)
    print(
        f"utility peaks at bid {summary['bid_at_max_utility']:.4g} (cost {summary['cost']:.4g}); "
        f"win probability non-increasing: {summary['win_probability_non_increasing']}; "
        f"wrote {png}, {csv}, {summary_path}"
    )
    return 0


__all__ = ["register"]
