"""How often a unilateral misreport pays in the second paper's mechanisms (docs/matching.md §3–4).

    python scripts/matching_deviations.py --size 3x3x3 --markets 100 --opt-markets 10 \
        --seed 0 --json results/matching/deviations_3x3x3.json
    python scripts/matching_deviations.py --size 6x8x10 --markets 50 --opt-markets 0 \
        --seed 0 --json results/matching/deviations_6x8x10.json

**Markets.** ``--markets`` truthful markets of size L×M×N drawn one after another by
:func:`tbcim.matching.scenario.generate` (section VI-A's distributions, defaults) from
``numpy.random.default_rng(seed)``.

**Pair deviations (§3, Theorem 4).** In each market the tested pairs are every Subopt winner and
one random losing triple (drawn from ``default_rng(seed + 1)``). A pair reports each joint bid of
:func:`pair_grid` (``linspace(0, v_l, 101)`` and its true joint bid J ± geomspace(1e-3, J, 20))
to its buyer, everything else truthful
(:func:`tbcim.matching.deviations.best_pair_deviation`). Gain = best utility − truthful utility.
Four variants: Subopt's payment ``paper`` (25) or ``critical``, each on the market as drawn (the
pair can serve every buyer: multi-minded) and on the market where the pair is made
single-minded (:func:`tbcim.matching.deviations.single_minded`).

**Seller deviations (§4, Corollary 3).** Each seller of each of the mechanism's winning triples
shifts all its bids to that buyer by s ∈ {−0.75, −0.5, −0.25}·(its bid) ∪ geomspace(1e-3, v_l, 40)
(:func:`tbcim.matching.deviations.best_seller_deviation`). Mechanisms: Subopt with the
proportional split (Algorithm 2, line 18) and with the critical split on every market, each on
the market as drawn and with the seller made single-minded; Opt with the proportional and the
``vcg_seller`` split, market as drawn, on the first ``--opt-markets`` markets (Opt solves L + 1
MILPs per call, about 0.1 s at 3×3×3).

A deviation "gains" when its gain exceeds 1e-9. Grids can miss a narrow winning window, so each
count is a lower bound on the true number. The JSON holds a summary per variant: tested, gained,
share, max and median gain among the gainers; the CSV next to it (same name, ``.csv``) holds every
deviation that gained, with its market index, triple, gain and best misreport.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tbcim.configfile import provenance
from tbcim.matching.deviations import (
    Mechanism,
    best_pair_deviation,
    best_seller_deviation,
    single_minded,
)
from tbcim.matching.model import MatchingMarket
from tbcim.matching.opt import opt
from tbcim.matching.scenario import ScenarioConfig, generate
from tbcim.matching.subopt import subopt
from tbcim.results import machine_label, write_csv, write_json

GAIN_TOL = 1e-9
VARIANTS = ("as_drawn", "single_minded")
PAIR_POINTS = 101
PAIR_NEAR = 20
SELLER_UNDERBIDS = (-0.75, -0.5, -0.25)
SELLER_OVERBIDS = 40
PAIR_MECHANISMS: dict[str, Mechanism] = {
    "subopt_paper": functools.partial(subopt, payment="paper"),
    "subopt_critical": subopt,
}
SELLER_MECHANISMS: dict[str, Mechanism] = {
    "subopt_proportional": subopt,
    "subopt_critical_split": functools.partial(subopt, split="critical"),
}
OPT_SELLER_MECHANISMS: dict[str, Mechanism] = {
    "opt_proportional": opt,
    "opt_vcg_seller": functools.partial(opt, split="vcg_seller"),
}


def seller_shifts(bid: float, valuation: float) -> np.ndarray:
    """A seller's shifts of its bids to a buyer: three underbids and overbids up to v_l."""
    under = [f * bid for f in SELLER_UNDERBIDS]
    return np.concatenate([under, np.geomspace(1e-3, valuation, SELLER_OVERBIDS)])


def pair_grid(joint: float, valuation: float) -> np.ndarray:
    """The joint bids a pair with true joint bid ``joint`` tries: ``linspace(0, v_l, 101)`` and
    ``joint`` ± geomspace(1e-3, joint, 20), inside [0, v_l]."""
    near = np.geomspace(1e-3, max(joint, 2e-3), PAIR_NEAR)
    grid = np.concatenate([np.linspace(0.0, valuation, PAIR_POINTS), joint - near, joint + near])
    return np.unique(grid[(grid >= 0.0) & (grid <= valuation)])


def pair_records(
    market: MatchingMarket, triples: list[tuple[int, int, int]], winners: int
) -> list[dict[str, Any]]:
    """One record per (triple, pair mechanism, market variant); the first ``winners`` triples
    are Subopt's winners, the rest losers."""
    records = []
    for i, triple in enumerate(triples):
        grid = pair_grid(float(market.joint_bids[triple]), float(market.valuations[triple[0]]))
        variants = dict(zip(VARIANTS, (market, single_minded(market, triple, "pair")), strict=True))
        for mech_name, mechanism in PAIR_MECHANISMS.items():
            for variant, true_market in variants.items():
                gain, bid = best_pair_deviation(mechanism, true_market, triple, grid)
                records.append(
                    {
                        "variant": f"{mech_name}/{variant}",
                        "triple": list(triple),
                        "winner": i < winners,
                        "gain": gain,
                        "best_joint_bid": bid,
                        "true_joint_bid": float(true_market.joint_bids[triple]),
                    }
                )
    return records


def seller_records(
    market: MatchingMarket, mechanisms: dict[str, Mechanism], single: bool
) -> list[dict[str, Any]]:
    """One record per (winning seller, mechanism, market variant): its best gain over
    :func:`seller_shifts`; the single-minded variant only if ``single``."""
    records = []
    for name, mechanism in mechanisms.items():
        for triple in (tuple(t) for t in mechanism(market).matching.triples.tolist()):
            buyer, m, n = triple
            bids = {"data": market.data_bids[buyer, m], "uav": market.uav_bids[buyer, m, n]}
            for (kind, bid), variant in itertools.product(bids.items(), VARIANTS[: 1 + single]):
                shifts = seller_shifts(float(bid), float(market.valuations[buyer]))
                true_market = (
                    market if variant == "as_drawn" else single_minded(market, triple, kind)
                )
                gain, shift = best_seller_deviation(mechanism, true_market, triple, kind, shifts)
                records.append(
                    {
                        "variant": f"{name}/{variant}",
                        "triple": list(triple),
                        "seller": kind,
                        "gain": gain,
                        "best_shift": shift,
                        "true_bid": float(bid),
                    }
                )
    return records


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: tested, gained (gain > GAIN_TOL), share, max and median gain of gainers."""
    out: dict[str, dict[str, Any]] = {}
    for variant in dict.fromkeys(r["variant"] for r in records):
        gains = [r["gain"] for r in records if r["variant"] == variant]
        gainers = [g for g in gains if g > GAIN_TOL]
        out[variant] = {
            "tested": len(gains),
            "gained": len(gainers),
            "share": len(gainers) / len(gains),
            "max_gain": max(gainers, default=0.0),
            "median_gain_of_gainers": statistics.median(gainers) if gainers else 0.0,
        }
    return out


def measure(
    size: tuple[int, int, int], markets: int, opt_markets: int, seed: int, progress: bool = False
) -> dict[str, Any]:
    """Every deviation of the module docstring on ``markets`` markets of ``size``."""
    rng, pick = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    pairs: list[dict[str, Any]] = []
    sellers: list[dict[str, Any]] = []
    for k in tqdm(range(markets), desc=f"deviations {size}", disable=not progress):
        market = generate(*size, rng)
        winners = [tuple(t) for t in subopt(market).matching.triples.tolist()]
        losers = [t for t in np.ndindex(*size) if t not in set(winners)]
        tested = winners + ([losers[int(pick.integers(len(losers)))]] if losers else [])
        for record in pair_records(market, tested, len(winners)):  # type: ignore[arg-type]
            pairs.append({"market": k, **record})
        records = seller_records(market, SELLER_MECHANISMS, single=True)
        if k < opt_markets:
            records += seller_records(market, OPT_SELLER_MECHANISMS, single=False)
        sellers += [{"market": k, **record} for record in records]
    winner_pairs = [r for r in pairs if r["winner"]]
    return {
        "pairs_summary_winners": summarise(winner_pairs),
        "pairs_summary_all": summarise(pairs),
        "sellers_summary": summarise(sellers),
        "pairs": pairs,
        "sellers": sellers,
    }


def _size(text: str) -> tuple[int, int, int]:
    parts = tuple(int(x) for x in text.lower().split("x"))
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size must be LxMxN with positive counts, got {text!r}")
    return parts  # type: ignore[return-value]


def _print(title: str, summary: dict[str, dict[str, Any]]) -> None:
    print(title)
    for variant, s in summary.items():
        print(
            f"  {variant:36s} {s['gained']:4d}/{s['tested']:<4d} ({s['share']:6.1%})"
            f"  max {s['max_gain']:.4g}  median {s['median_gain_of_gainers']:.4g}"
        )


def report(args: argparse.Namespace, argv: list[str] | None, result: dict[str, Any]) -> dict:
    """The JSON report: the run's settings, provenance and :func:`measure`'s summaries (the
    deviations themselves go to the CSV, see :func:`gainers`)."""
    return {
        "size": list(args.size),
        "markets": args.markets,
        "opt_markets": args.opt_markets,
        "seed": args.seed,
        "gain_tol": GAIN_TOL,
        "machine": machine_label(),
        **provenance("scripts/matching_deviations.py", argv, None, scenario=ScenarioConfig()),
        **{k: v for k, v in result.items() if k.endswith("summary") or "_summary_" in k},
    }


def gainers(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every tested deviation that gained (gain > GAIN_TOL), pairs then sellers, one CSV row each
    (``triple`` as "l/m/n"); the others are reproduced by the command."""
    rows = []
    for kind in ("pairs", "sellers"):
        for record in result[kind]:
            if record["gain"] > GAIN_TOL:
                triple = "/".join(str(x) for x in record["triple"])
                rows.append({"deviation": kind[:-1], **record, "triple": triple})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size", type=_size, default=(3, 3, 3), help="LxMxN, e.g. 3x3x3")
    parser.add_argument("--markets", type=int, default=100)
    parser.add_argument("--opt-markets", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", required=True, help="write results here")
    args = parser.parse_args(argv)
    if args.markets < 1 or not 0 <= args.opt_markets <= args.markets:
        parser.error("need --markets >= 1 and 0 <= --opt-markets <= --markets")
    result = measure(args.size, args.markets, args.opt_markets, args.seed, progress=True)
    _print("pair deviations, Subopt winners:", result["pairs_summary_winners"])
    _print("pair deviations, winners + one random loser per market:", result["pairs_summary_all"])
    _print("seller deviations (winning sellers):", result["sellers_summary"])
    csv_out = Path(args.json_out).with_suffix(".csv")
    write_json(args.json_out, report(args, argv, result))
    write_csv(csv_out, gainers(result))
    print(f"wrote {args.json_out} and {csv_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
