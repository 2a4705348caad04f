"""Figures 6 and 7 of the TBCIM paper for trained RANets, each as PNG plus its data as CSV.

* Fig. 6 — buyer utility (the paper's "social welfare" (1)) and regret over training, one panel
  column per trained model (the paper shows 3, 5 and 10 ESs). Data: the per-epoch history saved
  with each model (training-batch means and the held-out validation figures).
* Fig. 7 — one ES with a fixed cost c and fixed public data, the others' types drawn from the
  setting: its win probability z_s(b) and its utility u_s(b) = p_s(b) − z_s(b)·c, averaged over
  the others, against its own bid b. The paper says the win probability peaks at b ≈ c; in a
  truthful mechanism z_s is non-increasing in b and it is the *utility* that peaks at b = c
  (MODEL-NOTES §2). :func:`bid_response` reports which of the two holds. Over several seeds
  the curves are the mean over the seeds, drawn with a ±1 sample std band.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tbcim.auction.mechanism import Profiles
from tbcim.auction.ranet.evaluation import held_out_profiles
from tbcim.auction.ranet.nets import RANet
from tbcim.auction.ranet_exact.nets import ExactRANet
from tbcim.auction.regret import MONOTONE_TOL
from tbcim.errors import ConfigError
from tbcim.results import new_figure, plot_mean, save_figure, write_csv, write_json
from tbcim.seeding import numbers_over_seeds, rows_over_seeds


def training_rows(label: str, history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Fig. 6 data: one CSV row per epoch of one training history."""
    return [
        {
            "model": label,
            "epoch": row["epoch"],
            "iteration": row["iteration"],
            "train_buyer_utility": row["buyer_utility"],
            "train_regret_mean": row["regret_mean"],
            "val_buyer_utility": row["val_buyer_utility"],
            "val_social_welfare": row["val_social_welfare"],
            "val_regret_mean": row["val_regret_mean"],
            "val_regret_max": row["val_regret_max"],
            "lambda_mean": float(np.mean(row["lambda"])),
            "rho": row["rho"],
        }
        for row in history
    ]


def plot_training(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    out_png: str | Path,
    optimum: Mapping[str, float | None] | None = None,
    selected: Mapping[str, int | None] | None = None,
) -> tuple[Path, Path]:
    """Fig. 6 for ``{label: history}``; writes ``out_png`` and the CSV beside it.

    ``optimum`` adds the known optimal buyer utility, ``selected`` marks the epoch kept.
    """
    if not histories or any(not h for h in histories.values()):
        raise ConfigError("model", "every model needs a non-empty training history")
    out_png = Path(out_png)
    fig, axes = new_figure(2, len(histories), figsize=(4.2 * len(histories), 6), squeeze=False)
    rows: list[dict[str, Any]] = []
    for column, (label, history) in enumerate(histories.items()):
        data = training_rows(label, history)
        rows += data
        epoch = [r["epoch"] for r in data]
        top, bottom = axes[0][column], axes[1][column]
        top.plot(epoch, [r["train_buyer_utility"] for r in data], label="train batches")
        top.plot(epoch, [r["val_buyer_utility"] for r in data], label="validation")
        best = (optimum or {}).get(label)
        if best is not None:
            top.axhline(best, color="k", linestyle="--", linewidth=1, label="optimum (Myerson)")
        pick = (selected or {}).get(label)
        if pick is not None:
            for ax in (top, bottom):
                ax.axvline(pick, color="grey", linestyle=":", linewidth=1)
        top.set_title(label)
        top.set_ylabel("buyer utility U_d − Σp")
        bottom.semilogy(epoch, [max(r["train_regret_mean"], 1e-8) for r in data], label="train")
        bottom.semilogy(epoch, [max(r["val_regret_mean"], 1e-8) for r in data], label="val mean")
        bottom.semilogy(epoch, [max(r["val_regret_max"], 1e-8) for r in data], label="val max")
        bottom.set_xlabel("epoch")
        bottom.set_ylabel("regret / (b̄ − b_low)")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.suptitle(
        "Fig. 6: buyer utility (the paper's 'social welfare' (1)) and regret over training "
        "(dotted: selected epoch)"
    )
    fig.tight_layout()
    csv_path = write_csv(out_png.with_suffix(".csv"), rows)
    return save_figure(fig, out_png), csv_path


def bid_response(
    model: RANet | ExactRANet,
    server: int = 0,
    cost: float | None = None,
    samples: int = 2_000,
    points: int = 101,
    seeds: Sequence[int] = (0,),
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Fig. 7 data: mean win probability and utility of ES ``server`` against its bid.

    The ES keeps the public data of the first held-out profile; ``cost`` defaults to the point a
    quarter of the way up the bid space. Returns (rows, summary) where the summary says where
    each curve peaks and whether the win probability is non-increasing in the bid.

    Each seed draws the other ESs' profiles (and the ES's public data) anew. Several seeds: the
    rows hold the mean over the seeds, its sample std and each seed's value
    (:func:`tbcim.seeding.rows_over_seeds`); the summary describes the mean curve and adds the
    seeds, the mean and std of each seed's figures and every seed's summary (``per_seed``).
    """
    setting = model.setting
    if isinstance(server, bool) or not 0 <= server < setting.n_servers:
        raise ConfigError("server", f"must be an ES index in [0, {setting.n_servers - 1}]")
    if cost is None:
        cost = setting.bid_low + 0.25 * setting.bid_range
    if not np.isfinite(cost) or not setting.bid_low <= cost <= setting.bid_high:
        raise ConfigError(
            "cost", f"must lie in the bid space [{setting.bid_low:g}, {setting.bid_high:g}]"
        )
    if isinstance(points, bool) or points < 2:
        raise ConfigError("points", f"needs at least 2 bids, got {points}")
    head = {"setting": setting.name, "server": server, "cost": float(cost)}
    step = setting.bid_range / (points - 1)
    curves, summaries = {}, []
    for seed in seeds:
        rows, public = _bid_curve(model, server, cost, samples, points, seed)
        curves[seed] = rows
        summaries.append({**head, **public, "samples": samples, **_peaks(rows, cost, step)})
    rows = rows_over_seeds(curves, ("win_probability", "utility"))
    if len(summaries) == 1:
        return rows, summaries[0]
    summary = {**head, "samples": samples, "seeds": list(seeds), **_peaks(rows, cost, step)}
    fixed = {*head, "samples"}
    summary.update(
        numbers_over_seeds([{k: v for k, v in one.items() if k not in fixed} for one in summaries])
    )
    summary["per_seed"] = [{"seed": s, **one} for s, one in zip(seeds, summaries, strict=True)]
    return rows, summary


def _bid_curve(
    model: RANet | ExactRANet, server: int, cost: float, samples: int, points: int, seed: int
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """One seed's curve rows and the public data (d, EMD) that the ES keeps."""
    setting = model.setting
    others = held_out_profiles(setting, samples, seed)
    sizes, emds = others.data_sizes.copy(), others.emds.copy()
    sizes[:, server], emds[:, server] = sizes[0, server], emds[0, server]
    rows = []
    for bid in np.linspace(setting.bid_low, setting.bid_high, points):
        bids = others.bids.copy()
        bids[:, server] = bid
        z, p = model.outcome(Profiles(bids, sizes, emds))
        rows.append(
            {
                "bid": float(bid),
                "win_probability": float(z[:, server].mean()),
                "utility": float((p[:, server] - z[:, server] * cost).mean()),
            }
        )
    return rows, {"data_size": float(sizes[0, server]), "emd": float(emds[0, server])}


def _peaks(rows: Sequence[Mapping[str, float]], cost: float, step: float) -> dict[str, Any]:
    """Where the curves of ``rows`` (bids ``step`` apart) peak, and whether the win probability
    never rises."""
    win = np.array([r["win_probability"] for r in rows])
    utility = np.array([r["utility"] for r in rows])
    bid_grid = np.array([r["bid"] for r in rows])
    best_bid = float(bid_grid[np.argmax(utility)])
    return {
        "bid_at_max_utility": best_bid,
        "utility_peaks_at_cost": bool(abs(best_bid - cost) <= step),
        "utility_at_cost": float(np.interp(cost, bid_grid, utility)),
        "utility_max": float(utility.max()),
        "bid_at_max_win_probability": float(bid_grid[np.argmax(win)]),
        "win_probability_max_rise": float(max(np.diff(win).max(), 0.0)),
        "win_probability_non_increasing": bool(np.diff(win).max() <= MONOTONE_TOL),
    }


def plot_bid_response(
    rows: Sequence[Mapping[str, float]], summary: Mapping[str, Any], out_png: str | Path
) -> tuple[Path, Path, Path]:
    """Fig. 7: PNG, CSV of the curves and a JSON summary, all beside each other."""
    out_png = Path(out_png)
    fig, ax = new_figure(figsize=(6, 4))
    bids = [r["bid"] for r in rows]
    plot_mean(ax, bids, rows, "win_probability", color="tab:blue", label="win probability")
    ax.set_xlabel("bid of the ES")
    ax.set_ylabel("win probability z_s", color="tab:blue")
    right = ax.twinx()
    plot_mean(right, bids, rows, "utility", color="tab:green", label="utility")
    right.set_ylabel("utility p_s − z_s·c_s", color="tab:green")
    ax.axvline(summary["cost"], color="k", linestyle="--", linewidth=1)
    seeds = summary.get("seeds")
    over = "" if seeds is None else f"; mean ± 1 std over seeds {','.join(map(str, seeds))}"
    ax.set_title(
        f"Fig. 7 ({summary['setting']}, ES {summary['server']}, cost {summary['cost']:.3g}{over}): "
        f"utility peaks at bid {summary['bid_at_max_utility']:.3g} "
        f"(+{summary['utility_max'] - summary['utility_at_cost']:.1e} over truthful);\n"
        f"win probability non-increasing: {summary['win_probability_non_increasing']}",
        fontsize=9,
    )
    csv_path = write_csv(out_png.with_suffix(".csv"), rows)
    json_path = write_json(out_png.with_suffix(".json"), dict(summary))
    return save_figure(fig, out_png), csv_path, json_path
