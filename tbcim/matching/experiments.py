"""Section VI's experiments: Table II, Fig. 3, Fig. 4 + Table III, Fig. 5 (CSV + PNG each).

Sizes are written the paper's way, "L/N/M" = buyers / UAV-sellers / data-sellers (so "2/4/6" is
2 buyers, 4 UAV-sellers and 6 data-sellers). Every market is drawn from section VI-A's
distributions (``scenario.generate``) by one seeded generator, so a seed fixes every result
except the measured times. The paper averages over 1000 auctions; the instance counts here are
smaller (arguments, defaults below) and written into every CSV.

Each experiment takes ``seeds``. One seed writes the single-seed files. Several seeds: Table II's
and Fig. 3's rows hold the mean over the seeds, its sample std (``*_std``) and each seed's value
(``*_seed<s>``), and their figures draw the mean with a ±1 std band; so do Fig. 4's
individual-rationality rows. Table III and Fig. 5 are about one market, which each seed draws
anew (other winners, other bids), so they are not averaged: their rows carry a ``seed`` column,
Fig. 5 draws every seed's curves and Fig. 4's bars show the first seed's market.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tbcim.matching.deviations import sweep_seller_bid
from tbcim.matching.methods import METHODS, run_method
from tbcim.matching.model import MatchingMarket, Outcome, SellerRef
from tbcim.matching.opt import opt
from tbcim.matching.scenario import generate
from tbcim.matching.subopt import subopt
from tbcim.results import new_figure, plot_mean, save_figure, write_csv
from tbcim.seeding import rows_over_seeds, seed_everything, stack_seeds

Size = tuple[int, int, int]  # (buyers L, data-sellers M, UAV-sellers N)

# The paper's Table II, keyed by its "L/N/M" labels (seconds, MATLAB on an i7-11700F).
_PAPER_TABLE2_ROWS = {  # Opt, Subopt, FOGA, HVPM, LCPM, RSBM (the order of METHODS)
    "1/5/5": (10097, 0.358, 3.94, 0.305, 0.277, 0.305),
    "3/5/5": (11384, 0.558, 5.43, 0.321, 0.331, 0.400),
    "5/5/5": (13771, 1.304, 15.50, 0.388, 0.350, 0.407),
    "7/5/5": (27799, 1.097, 81.01, 0.414, 0.411, 0.427),
    "9/5/5": (2213192, 1.303, 1137.99, 0.421, 0.424, 0.434),
    "1/3/5": (7478, 0.266, 0.73, 0.250, 0.279, 0.292),
    "2/4/6": (11901, 0.432, 5.25, 0.309, 0.310, 0.336),
    "3/5/7": (25048, 0.743, 192.16, 0.321, 0.329, 0.342),
    "4/6/8": (151866, 1.093, 17870.20, 0.364, 0.382, 0.354),
}
PAPER_TABLE2: dict[str, dict[str, float]] = {
    label: dict(zip(METHODS, values, strict=True)) for label, values in _PAPER_TABLE2_ROWS.items()
}
# The paper's revenue gaps to Opt at 6/8/10 (section VI-C), in percent.
PAPER_GAP_6_8_10 = {
    "Opt": 0.0, "Subopt": 2.25, "FOGA": 1.5, "HVPM": 25.64, "LCPM": 49.70, "RSBM": 47.30,
}  # fmt: skip
# The paper's Table III (8/10/12): pair "buyer/UAV/data" and the figures of each winner.
PAPER_TABLE3_COLUMNS = (
    "winning_pair", "uav_bid", "data_bid", "joint_bid", "total_payment", "pair_revenue",
    "uav_payment", "uav_revenue", "data_payment", "data_revenue",
)  # fmt: skip
PAPER_TABLE3 = (
    ("1/1/8", 1.8304, 2.6219, 4.4523, 4.6337, 0.1814, 1.9066, 0.0762, 2.7271, 0.1052),
    ("2/12/7", 1.6292, 2.9789, 4.0681, 4.6187, 0.0106, 1.6329, 0.0037, 2.9858, 0.0069),
    ("3/7/5", 1.6438, 3.2232, 4.8670, 4.8910, 0.0240, 1.6519, 0.0081, 3.2391, 0.0159),
    ("4/10/4", 1.1473, 2.7552, 3.9025, 3.9537, 0.0502, 1.1624, 0.0151, 2.7913, 0.0361),
    ("5/3/2", 1.0655, 3.0868, 4.1523, 4.2638, 0.1115, 1.0941, 0.0286, 3.1697, 0.0829),
    ("6/11/10", 1.2048, 3.6317, 4.8365, 4.8609, 0.0244, 1.2109, 0.0061, 3.6500, 0.0183),
    ("7/5/6", 0.8124, 2.4433, 3.2557, 3.2562, 0.0005, 0.8125, 0.0001, 2.4437, 0.004),
    ("8/8/1", 1.6318, 3.8899, 5.5217, 5.5673, 0.0456, 1.6453, 0.0135, 3.9220, 0.0321),
)
LARGE_SUBOPT_SIZES: tuple[Size, ...] = ((10, 10, 10), (20, 20, 20), (50, 50, 50), (100, 100, 100))
PAPER_AXIS_COUNTS = tuple(range(1, 11))


def paper_size(label: str) -> Size:
    """ "L/N/M" → (L, M, N)."""
    buyers, uavs, datas = (int(x) for x in label.split("/"))
    return buyers, datas, uavs


def label_of(size: Size) -> str:
    """(L, M, N) → "L/N/M"."""
    return f"{size[0]}/{size[2]}/{size[1]}"


def _markets(rng: np.random.Generator, size: Size, count: int) -> list[MatchingMarket]:
    return [generate(*size, rng) for _ in range(count)]


def table2(
    out: Path,
    seeds: Sequence[int],
    instances: int = 20,
    large_sizes: tuple[Size, ...] = LARGE_SUBOPT_SIZES,
    large_repeats: int = 3,
) -> list[dict]:
    """Mean running time of the six methods at the paper's sizes; Subopt also at far larger ones."""
    per_seed = {s: _table2_seed(s, instances, large_sizes, large_repeats) for s in seeds}
    rows = rows_over_seeds(per_seed, ("mean_seconds", "max_seconds"))
    write_csv(out / "table2.csv", rows)
    _plot_table2(rows, out / "table2.png")
    return rows


def _table2_seed(
    seed: int, instances: int, large_sizes: tuple[Size, ...], large_repeats: int
) -> list[dict]:
    rng = seed_everything(seed)
    rows: list[dict] = []
    for label in tqdm(PAPER_TABLE2, desc="table2"):
        markets = _markets(rng, paper_size(label), instances)
        for method in METHODS:
            seconds = []
            for market in markets:
                start = time.perf_counter()
                run_method(method, market, rng)
                seconds.append(time.perf_counter() - start)
            rows.append(_time_row(label, method, seconds, PAPER_TABLE2[label][method]))
    for size in tqdm(large_sizes, desc="table2 large"):
        markets = _markets(rng, size, large_repeats)
        seconds = []
        for market in markets:
            start = time.perf_counter()
            subopt(market)
            seconds.append(time.perf_counter() - start)
        rows.append(_time_row(label_of(size), "Subopt", seconds, float("nan")))
    return rows


def _time_row(label: str, method: str, seconds: list[float], paper: float) -> dict:
    return {
        "size": label,
        "method": method,
        "instances": len(seconds),
        "mean_seconds": float(np.mean(seconds)),
        "max_seconds": float(np.max(seconds)),
        "paper_seconds": paper,
    }


def _plot_table2(rows: list[dict], path: Path) -> None:
    fig, ax = new_figure(figsize=(9, 4.5))
    labels = list(PAPER_TABLE2)
    for method in METHODS:
        ours = [r for r in rows if r["method"] == method and r["size"] in labels]
        line = plot_mean(ax, labels, ours, "mean_seconds", marker="o", label=f"{method} (ours)")
        paper = [PAPER_TABLE2[label][method] for label in labels]
        ax.plot(labels, paper, ls="--", color=line.get_color(), alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("problem size L/N/M (buyers/UAV-sellers/data-sellers)")
    ax.set_ylabel("running time (s); dashed = the paper's Table II")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def fig3(
    out: Path,
    seeds: Sequence[int],
    instances: int = 30,
    counts: tuple[int, ...] = PAPER_AXIS_COUNTS,
) -> list[dict]:
    """Total revenue F (9) against problem size and against each party's count (others at 5)."""
    per_seed = {s: _fig3_seed(s, instances, counts) for s in seeds}
    rows = rows_over_seeds(per_seed, ("mean_revenue", "gap_to_opt_pct"))
    write_csv(out / "fig3.csv", rows)
    _plot_fig3(rows, out / "fig3.png")
    return rows


def _fig3_seed(seed: int, instances: int, counts: tuple[int, ...]) -> list[dict]:
    rng = seed_everything(seed)
    panels: list[tuple[str, list[Size]]] = [
        ("size", [paper_size(label) for label in PAPER_TABLE2] + [paper_size("6/8/10")]),
        ("buyers", [(k, 5, 5) for k in counts]),
        ("uav_sellers", [(5, 5, k) for k in counts]),
        ("data_sellers", [(5, k, 5) for k in counts]),
    ]
    rows: list[dict] = []
    for panel, sizes in panels:
        for size in tqdm(sizes, desc=f"fig3 {panel}"):
            revenue: dict[str, list[float]] = {method: [] for method in METHODS}
            for market in _markets(rng, size, instances):
                for method in METHODS:
                    matching = run_method(method, market, rng, payments=False)
                    revenue[method].append(matching.revenue)
            opt_mean = float(np.mean(revenue["Opt"]))
            for method in METHODS:
                mean = float(np.mean(revenue[method]))
                gap = 100.0 * (opt_mean - mean) / opt_mean if opt_mean > 0 else 0.0
                paper_gap = PAPER_GAP_6_8_10[method] if label_of(size) == "6/8/10" else ""
                rows.append(
                    {
                        "panel": panel,
                        "size": label_of(size),
                        "count": {"size": 0, "buyers": size[0], "uav_sellers": size[2]}.get(
                            panel, size[1]
                        ),
                        "method": method,
                        "instances": instances,
                        "mean_revenue": mean,
                        "gap_to_opt_pct": gap,
                        "paper_gap_to_opt_pct": paper_gap,
                    }
                )
    return rows


def _plot_fig3(rows: list[dict], path: Path) -> None:
    fig, axes = new_figure(2, 2, figsize=(11, 8))
    titles = {
        "size": "(a) problem size L/N/M",
        "buyers": "(b) buyers (others 5)",
        "uav_sellers": "(c) UAV-sellers (others 5)",
        "data_sellers": "(d) data-sellers (others 5)",
    }
    for ax, (panel, title) in zip(axes.ravel(), titles.items(), strict=True):
        for method in METHODS:
            sel = [r for r in rows if r["panel"] == panel and r["method"] == method]
            xs = [r["size"] if panel == "size" else r["count"] for r in sel]
            plot_mean(ax, xs, sel, "mean_revenue", marker="o", ms=3, label=method)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("total revenue of buyers F")
        ax.tick_params(axis="x", labelsize=7)
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def _winner_rows(market: MatchingMarket, outcome: Outcome) -> list[dict]:
    """Table III's columns for each winner (1-based "buyer/UAV/data" labels)."""
    rows = []
    for i, (l_, m, n) in enumerate(outcome.matching.triples.tolist()):
        uav_bid, data_bid = market.uav_bids[l_, m, n], market.data_bids[l_, m]
        pay = outcome.pair_payments[i]
        rows.append(
            {
                "winning_pair": f"{l_ + 1}/{n + 1}/{m + 1}",
                "uav_bid": uav_bid,
                "data_bid": data_bid,
                "joint_bid": uav_bid + data_bid,
                "total_payment": pay,
                "pair_revenue": pay - uav_bid - data_bid,
                "uav_payment": outcome.uav_payments[n],
                "uav_revenue": outcome.uav_payments[n] - uav_bid,
                "data_payment": outcome.data_payments[m],
                "data_revenue": outcome.data_payments[m] - data_bid,
            }
        )
    return rows


MECHANISMS: dict[str, Callable[[MatchingMarket], Outcome]] = {
    "Subopt critical + proportional split": subopt,
    "Subopt critical + critical split": functools.partial(subopt, split="critical"),
    "Subopt paper (25) + proportional split": functools.partial(subopt, payment="paper"),
    "Opt VCG + proportional split": opt,
    "Opt VCG + per-seller VCG split": functools.partial(opt, split="vcg_seller"),
}


#: Fig. 4's individual-rationality figures that several seeds average.
FIG4_VALUES = (
    "winners", "min_pair_utility", "min_seller_utility", "negative_utilities",
    "mean_total_payment", "payment_vs_proportional_pct",
)  # fmt: skip


def fig4(out: Path, seeds: Sequence[int], instances: int = 50) -> list[dict]:
    """Table III at 8/10/12 and individual rationality over ``instances`` markets.

    Also measures what the per-seller-truthful splits cost the buyers: the mean total payment
    against the proportional split.
    """
    runs = {s: _fig4_seed(s, instances) for s in seeds}
    detail = stack_seeds({s: winners for s, (winners, _) in runs.items()})
    detail += [
        {"mechanism": "paper Table III", **dict(zip(PAPER_TABLE3_COLUMNS, r, strict=True))}
        for r in PAPER_TABLE3
    ]
    write_csv(out / "table3.csv", detail)
    summary = rows_over_seeds({s: rows for s, (_, rows) in runs.items()}, FIG4_VALUES)
    write_csv(out / "fig4.csv", summary)
    first = runs[seeds[0]][0]
    paper_split = [r for r in first if r["mechanism"] == "Subopt critical + proportional split"]
    _plot_fig4(paper_split, out / "fig4.png", None if len(seeds) == 1 else seeds[0])
    return summary


def _fig4_seed(seed: int, instances: int) -> tuple[list[dict], list[dict]]:
    """One seed's Table III rows (its 8/10/12 market) and individual-rationality rows."""
    rng = seed_everything(seed)
    size = paper_size("8/10/12")
    market = generate(*size, rng)
    detail = []
    for name in ("Subopt critical + proportional split", "Subopt critical + critical split"):
        for row in _winner_rows(market, MECHANISMS[name](market)):
            detail.append({"mechanism": name, **row})
    summary = []
    markets = _markets(rng, size, instances)
    for name, mechanism in tqdm(MECHANISMS.items(), desc="fig4 IR"):
        pair_u, seller_u, paid = [], [], []
        for mk in markets:
            outcome = mechanism(mk)
            rows = _winner_rows(mk, outcome)
            pair_u += [r["pair_revenue"] for r in rows]
            seller_u += [r["uav_revenue"] for r in rows] + [r["data_revenue"] for r in rows]
            paid.append(outcome.data_payments.sum() + outcome.uav_payments.sum())
        summary.append(
            {
                "mechanism": name,
                "instances": instances,
                "winners": len(pair_u),
                "min_pair_utility": min(pair_u),
                "min_seller_utility": min(seller_u),
                "negative_utilities": sum(u < -1e-9 for u in pair_u + seller_u),
                "mean_total_payment": float(np.mean(paid)),
            }
        )
    references = {
        "Subopt": summary[0]["mean_total_payment"],
        "Opt": summary[3]["mean_total_payment"],
    }
    for row in summary:  # summary[0] and [3] are the proportional splits of Subopt and Opt
        ref = references[row["mechanism"].split()[0]]
        row["payment_vs_proportional_pct"] = 100.0 * (row["mean_total_payment"] / ref - 1.0)
    return detail, summary


def _plot_fig4(rows: list[dict], path: Path, seed: int | None) -> None:
    """Table III's bars of one market (``seed``: named in the titles when several were run)."""
    fig, axes = new_figure(1, 3, figsize=(14, 4))
    labels = [r["winning_pair"] for r in rows]
    x = np.arange(len(rows))
    for ax, (bid, pay, title) in zip(
        axes,
        (
            ("joint_bid", "total_payment", "seller pairs"),
            ("uav_bid", "uav_payment", "UAV-sellers"),
            ("data_bid", "data_payment", "data-sellers"),
        ),
        strict=True,
    ):
        ax.bar(x - 0.2, [r[bid] for r in rows], 0.4, label="bid (= true cost)")
        ax.bar(x + 0.2, [r[pay] for r in rows], 0.4, label="payment")
        ax.set_xticks(x, labels, rotation=45, fontsize=7)
        shown = "" if seed is None else f", seed {seed}"
        ax.set_title(f"{title}, 8/10/12 (buyer/UAV/data){shown}", fontsize=9)
    axes[0].legend(fontsize=7)
    save_figure(fig, path)


FIG5_MECHANISMS = (
    "Subopt critical + proportional split",
    "Subopt critical + critical split",
    "Subopt paper (25) + proportional split",
)


def fig5(out: Path, seeds: Sequence[int], points: int = 81) -> list[dict]:
    """Truthfulness sweeps at 8/10/12 for the winning pair with the largest margin.

    (a) the data-seller's bid moves by ±2 around its cost, the UAV-seller bids truthfully;
    (b) the UAV-seller's bid moves by ±2, the data-seller truthful; (c) the UAV-seller overbids
    by s and the data-seller underbids by s, so the pair's joint bid stays truthful (as in the
    paper's Fig. 5(c)). Bids below zero are not swept. Each seed sweeps its own market.
    """
    rows = stack_seeds({s: _fig5_seed(s, points) for s in seeds})
    write_csv(out / "fig5.csv", rows)
    _plot_fig5(rows, out / "fig5.png")
    return rows


def _fig5_seed(seed: int, points: int) -> list[dict]:
    rng = seed_everything(seed)
    market = generate(*paper_size("8/10/12"), rng)
    base = subopt(market)
    k = int(np.argmax(base.pair_utilities(market)))
    buyer, m, n = base.matching.triples[k].tolist()
    data, uav = SellerRef("data", m), SellerRef("uav", n)
    d_bid, u_bid = market.data_bids[buyer, m], market.uav_bids[buyer, m, n]

    def grid(low: float, high: float) -> np.ndarray:  # always holds the truthful point 0
        return np.union1d(np.linspace(low, high, points), [0.0])

    sweeps = {
        "a_data_moves": ([(data, 1.0)], grid(-min(2.0, d_bid), 2.0)),
        "b_uav_moves": ([(uav, 1.0)], grid(-min(2.0, u_bid), 2.0)),
        "c_joint_fixed": ([(uav, 1.0), (data, -1.0)], grid(0.0, d_bid)),
    }
    rows = []
    for panel, (movers, shifts) in tqdm(sweeps.items(), desc="fig5"):
        for name in FIG5_MECHANISMS:
            for row in sweep_seller_bid(MECHANISMS[name], market, buyer, movers, shifts):
                rows.append(
                    {
                        "panel": panel,
                        "mechanism": name,
                        "buyer": buyer + 1,
                        "data_seller": m + 1,
                        "uav_seller": n + 1,
                        "true_data_bid": d_bid,
                        "true_uav_bid": u_bid,
                        "data_utility": row.get(f"data{m}", ""),
                        "uav_utility": row.get(f"uav{n}", ""),
                        **{key: row[key] for key in ("shift", "partner", "pair_utility")},
                    }
                )
    return rows


def _plot_fig5(rows: list[dict], path: Path) -> None:
    """One line per seed (rows without a ``seed`` field: one seed), labelled once."""
    fig, axes = new_figure(3, 3, figsize=(14, 12))
    series = (
        ("pair_utility", "seller pair", "tab:blue"),
        ("data_utility", "data-seller", "tab:orange"),
        ("uav_utility", "UAV-seller", "tab:green"),
    )
    for i, panel in enumerate(("a_data_moves", "b_uav_moves", "c_joint_fixed")):
        for j, name in enumerate(FIG5_MECHANISMS):
            ax = axes[i, j]
            for k, seed in enumerate(dict.fromkeys(r.get("seed") for r in rows)):
                sel = [
                    r
                    for r in rows
                    if r["panel"] == panel and r["mechanism"] == name and r.get("seed") == seed
                ]
                shifts = [r["shift"] for r in sel]
                for key, label, color in series:
                    if sel and sel[0][key] != "":
                        shown = label if k == 0 else None
                        ax.plot(shifts, [r[key] for r in sel], label=shown, color=color)
            ax.axvline(0.0, color="red", lw=0.8, ls=":")
            ax.set_title(f"({panel[0]}) {name}", fontsize=8)
            ax.set_xlabel("misreport s (red: truthful)", fontsize=7)
            ax.set_ylabel("utility", fontsize=7)
            ax.legend(fontsize=6)
    fig.subplots_adjust(hspace=0.4)
    save_figure(fig, path)


EXPERIMENTS: dict[str, Callable[..., list[dict]]] = {
    "table2": table2,
    "fig3": fig3,
    "fig4": fig4,
    "fig5": fig5,
}
