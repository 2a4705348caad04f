"""TBCIM Figs. 5, 11 and 12: accuracy curves of BCFL runs on chain (section V-B).

Every run is :mod:`tbcim.figures.fl_runs`' benchmark setting (``configs/bench/fl.toml``: digits,
Dirichlet α = 0.5, 5 ESs with 3-10 candidate EDs each, 20 % sign-flippers from their first round,
δ1 = 2, η = 0.2), with δg = 10 rounds under ``--quick`` and 20 otherwise (the paper: CIFAR-10,
δg = 100). Each curve is the task test accuracy per round, mean ± sample std over the test
seeds; central training on all the data for as many epochs is drawn as the ceiling.

Rules, fixed before any run:

* **Fig. 5** (non-IID lowers accuracy against IID): No-IM without attackers; reproduced iff IID's
  accuracy averaged over the rounds (the curve's area: speed and level) is above non-IID's at
  every seed.
* **Fig. 11** (Ours is within 5 % of Ideal, and above Greedy and No-IM): final accuracy, means
  over the seeds: Ours ≥ 0.95 × Ideal, Ours > Greedy and Ours > No-IM. ``measured`` also says
  whether each gap exceeds the seeds' spread (the larger of the two stds).
* **Fig. 12** (accuracy recovers after the failure window; 20 % of the ESs down in rounds
  [0.15 δg, 0.30 δg)): reproduced iff, at every seed, the final accuracy with the failure is at
  least the accuracy just before the window and within 2 points of the same run without it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tbcim.figures.core import Claim, FigureContext, pm, stats
from tbcim.figures.fl_runs import (
    BENCH_CONFIG,
    central_accuracy,
    failure_window,
    run_all,
    run_config,
)
from tbcim.market.training import TrainingConfig
from tbcim.results import new_figure, plot_mean, save_figure, write_csv, write_json
from tbcim.seeding import rows_over_seeds

QUICK_ROUNDS, FULL_ROUNDS = 10, 20
LABELS = {
    "ideal": "Ideal (all EDs, no attackers, no verification)",
    "ours": "Ours (EMD + Stackelberg)",
    "greedy": "Greedy (cheapest half)",
    "no_im": "No-IM (join at 0.5)",
    "ours_failure": "Ours, 20 % of ESs down",
    "iid": "IID",
    "non_iid": "non-IID (Dirichlet 0.5)",
}
CONDITIONS = (
    "digits, Dirichlet alpha 0.5, 5 ESs x 3-10 candidate EDs, 20 % sign-flipping EDs from round 0 "
    "(none in Fig. 5 and in Ideal), delta1 = 2, eta = 0.2, {rounds} rounds on anvil; the paper: "
    "CIFAR-10, 100 rounds"
)


def base_config(ctx: FigureContext) -> TrainingConfig:
    rounds = QUICK_ROUNDS if ctx.quick else FULL_ROUNDS
    return TrainingConfig.load(BENCH_CONFIG).replace(**{"fl.global_rounds": rounds})


def fl_runs(ctx: FigureContext, names: tuple[str, ...]) -> dict[str, dict[int, dict[str, Any]]]:
    """The runs ``names`` at every seed: those not made yet in this invocation run now, in
    parallel (``ctx.jobs``); each is saved as ``runs/fl/<name>-seed<s>.json``."""
    base = base_config(ctx)
    todo = [(n, s) for n in names for s in ctx.seeds if f"fl:{n}:{s}" not in ctx.cached]
    if todo:
        ctx.log(f"  {len(todo)} FL run(s) on anvil, {ctx.jobs} at a time: {todo}")
        done = run_all([(run_config(base, n, s), f"{n} seed {s}") for n, s in todo], ctx.jobs)
        for (n, s), summary in zip(todo, done, strict=True):
            ctx.cached[f"fl:{n}:{s}"] = summary
            write_json(ctx.out / "runs" / "fl" / f"{n}-seed{s}.json", summary)
    return {n: {s: ctx.cached[f"fl:{n}:{s}"] for s in ctx.seeds} for n in names}


def central_curves(ctx: FigureContext) -> dict[int, list[float]]:
    """Central training's accuracy per epoch at every seed (the ceiling)."""
    base = base_config(ctx)

    def central(seed: int) -> list[float]:
        return central_accuracy(base.replace(**{"fl.seed": seed}))

    return {s: ctx.once(f"central:{s}", functools.partial(central, s)) for s in ctx.seeds}


def plot_curves(
    ctx: FigureContext,
    runs: dict[str, dict[int, dict[str, Any]]],
    title: str,
    window: tuple[int, int] | None = None,
) -> None:
    """``<name>.csv`` (per round: each run's and central training's mean, std and per-seed
    accuracy) and ``<name>.png`` (mean curves with ±1 std bands, the ceiling dashed)."""
    central = central_curves(ctx)
    names = [*runs, "central"]
    per_seed = {
        s: [
            {
                "round": r + 1,
                **{n: runs[n][s]["accuracy"][r] for n in runs},
                "central": central[s][r],
            }
            for r in range(len(central[s]))
        ]
        for s in ctx.seeds
    }
    rows = rows_over_seeds(per_seed, names)
    write_csv(ctx.path(".csv"), rows)
    fig, ax = new_figure(figsize=(6.4, 4.2))
    xs = [row["round"] for row in rows]
    for n in runs:
        plot_mean(ax, xs, rows, n, label=LABELS.get(n, n))
    plot_mean(ax, xs, rows, "central", color="grey", linestyle="--", label="central (ceiling)")
    if window is not None:
        ax.axvspan(window[0] + 0.5, window[1] + 0.5, color="grey", alpha=0.2, label="ESs down")
    ax.set_xlabel("global round")
    ax.set_ylabel("task test accuracy")
    ax.set_title(f"{title} (mean ± std over seeds {list(ctx.seeds)})")
    ax.legend(fontsize=7)
    save_figure(fig, ctx.path(".png"))


def _final(runs: dict[int, dict[str, Any]]) -> list[float]:
    return [float(run["final_accuracy"]) for run in runs.values()]


def _conditions(ctx: FigureContext) -> str:
    return CONDITIONS.format(rounds=QUICK_ROUNDS if ctx.quick else FULL_ROUNDS)


def fig5(ctx: FigureContext) -> Claim:
    """Fig. 5: No-IM without attackers on IID and on non-IID data (module docstring's rule)."""
    runs = fl_runs(ctx, ("iid", "non_iid"))
    plot_curves(ctx, runs, "Fig. 5: IID vs non-IID (No-IM, no attack)")
    area = {n: {s: float(np.mean(r["accuracy"])) for s, r in runs[n].items()} for n in runs}
    gaps = [area["iid"][s] - area["non_iid"][s] for s in ctx.seeds]
    measured: dict[str, Any] = {
        "mean_accuracy_over_rounds": {n: stats(list(area[n].values())) for n in runs},
        "final_accuracy": {n: stats(_final(runs[n])) for n in runs},
        "iid_minus_non_iid_per_seed": dict(zip(ctx.seeds, gaps, strict=True)),
        "central_final_accuracy": stats([c[-1] for c in central_curves(ctx).values()]),
    }
    return ctx.claim(
        "the non-IID setting lowers the training accuracy against IID",
        all(g > 0 for g in gaps),
        measured,
        _conditions(ctx) + "; No-IM (each ED joins with probability 0.5), no attackers",
        f"accuracy averaged over the rounds: IID {pm(measured['mean_accuracy_over_rounds']['iid'])}"
        f", non-IID {pm(measured['mean_accuracy_over_rounds']['non_iid'])}; final: IID "
        f"{pm(measured['final_accuracy']['iid'])}, non-IID "
        f"{pm(measured['final_accuracy']['non_iid'])}; central ceiling "
        f"{pm(measured['central_final_accuracy'])}",
    )


def fig11(ctx: FigureContext) -> Claim:
    """Fig. 11: Ideal, Ours, Greedy and No-IM (module docstring's rule)."""
    runs = fl_runs(ctx, ("ideal", "ours", "greedy", "no_im"))
    plot_curves(ctx, runs, "Fig. 11: who trains")
    final = {n: stats(_final(runs[n])) for n in runs}
    ours = final["ours"]
    ratio = ours["mean"] / final["ideal"]["mean"]
    gaps = {
        other: {
            "points": ours["mean"] - final[other]["mean"],
            "beyond_spread": ours["mean"] - final[other]["mean"]
            > max(ours["std"], final[other]["std"]),
        }
        for other in ("greedy", "no_im")
    }
    parts = {
        "ours_within_5pct_of_ideal": ratio >= 0.95,
        "ours_above_greedy": gaps["greedy"]["points"] > 0,
        "ours_above_no_im": gaps["no_im"]["points"] > 0,
    }
    measured: dict[str, Any] = {
        "final_accuracy": final,
        "ours_over_ideal": ratio,
        "ours_minus": gaps,
        "parts": parts,
        "central_final_accuracy": stats([c[-1] for c in central_curves(ctx).values()]),
    }
    return ctx.claim(
        "Ours stays within 5 % of Ideal's accuracy and is above Greedy and No-IM",
        all(parts.values()),
        measured,
        _conditions(ctx),
        "final accuracy: "
        + ", ".join(f"{n} {pm(final[n])}" for n in ("ideal", "ours", "greedy", "no_im"))
        + f"; Ours/Ideal {ratio:.3f}; central ceiling {pm(measured['central_final_accuracy'])}",
    )


def fig12(ctx: FigureContext) -> Claim:
    """Fig. 12: Ours with 20 % of the ESs down in the failure window (module docstring's rule)."""
    runs = fl_runs(ctx, ("ours", "ours_failure"))
    start, end = window = failure_window(base_config(ctx).run.fl.global_rounds)
    plot_curves(ctx, runs, "Fig. 12: 20 % of the ESs down", window)
    per_seed = {}
    for s in ctx.seeds:
        curve = runs["ours_failure"][s]["accuracy"]
        before = curve[start - 1] if start > 0 else 0.0
        final, without = curve[-1], runs["ours"][s]["final_accuracy"]
        per_seed[s] = {
            "before_window": before,
            "lowest_in_window": min(curve[start:end]) if end > start else None,
            "final": final,
            "final_without_failure": without,
            "recovered": final >= before and final >= without - 0.02,
        }
    measured: dict[str, Any] = {
        "window_rounds": [start + 1, end],  # 1-based, inclusive
        "final_accuracy": {n: stats(_final(runs[n])) for n in runs},
        "per_seed": per_seed,
    }
    return ctx.claim(
        "with 20 % of the ESs unavailable during training, accuracy fluctuates and then "
        "converges again after the failure window",
        all(p["recovered"] for p in per_seed.values()),
        measured,
        _conditions(ctx) + f"; 20 % of the ESs (1 of 5) down in rounds {start + 1}-{end}",
        f"final accuracy with the failure {pm(measured['final_accuracy']['ours_failure'])}, "
        f"without {pm(measured['final_accuracy']['ours'])}; per seed before the window → final: "
        + ", ".join(f"{p['before_window']:.3f} → {p['final']:.3f}" for p in per_seed.values()),
    )
