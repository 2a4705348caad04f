"""TBCIM Figs. 9 and 10: the market end to end at three gas prices and without blockchain.

The paper's claims (section V-B.4, V-B.5) can only hold if blockchain verification pays for
itself (MODEL-NOTES §3): the buyer pays for *verified* accuracy, so an update the chain filters
out or a failure it survives turns into revenue. That link is the market's own: the requester
attests the final model's accuracy on its committed evaluation set, and the escrow pays the
winners only if the target is met (``tbcim market run``). Each setting here is a full market run
(:func:`tbcim.market.run.run_market`: pricing, sealed bids, RANet-exact award, accept, BCFL on
chain, attest, settlement reconciled to the wei) on a fresh anvil node, into
``runs/market/<setting>-seed<s>/`` (a run folder ``tbcim market verify`` checks):

* ``p_g = 1e-2``, ``2e-2``, ``4e-2``: the ESs' bids include c_s^b (32) at that gas price, and
  every update goes through the aggregator's verification;
* ``no blockchain``: no c_s^b in the bids and no verification (plain FedAvg; the chain only
  records), the paper's "No-Blockchain Cost" scenario;
* ``no blockchain, no attack``: the same without the attackers. It is not part of either rule:
  it shows what the comparison depends on (the attackers are what verification is paid for).

Every setting has the same adversity (:data:`ADVERSITY`): 20 % of the EDs flip the sign of their
updates from round 0 and 20 % of the ESs are down in rounds [0.15 δg, 0.30 δg), as in the FL
benchmark (``configs/bench/fl.toml``, docs/fl.md). The market is ``configs/market/default.toml``
(5 ESs, 3-10 candidate EDs each, digits, reward 0.5, target accuracy 0.7) with δg = 10 under
``--quick`` (one task per seed) and 20 otherwise (two tasks per seed).

An ES's revenue in a task is what the escrow paid it minus its cost (its EDs' V_i and c_s^b) if
it won, and 0 if it did not; a winner of a task that missed the target is paid nothing and still
bears its cost. Fig. 9 averages it over the candidate ESs and the tasks; Fig. 10 draws the task
accuracy per round.

Rules, fixed before any run (means over the seeds):

* **Fig. 9**: reproduced iff the average revenue at 1e-2 and at 2e-2 is above no-blockchain's and
  the one at 4e-2 is not.
* **Fig. 10**: reproduced iff the final accuracy and the accuracy averaged over the rounds both
  rise with the gas price (1e-2 < 2e-2 < 4e-2) and 1e-2's final accuracy is above
  no-blockchain's.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from tbcim.configfile import read_config
from tbcim.figures.core import Claim, FigureContext, in_processes, pm, stats
from tbcim.figures.fl_runs import FAILED_SHARE, NO_DEFENCE, failure_window
from tbcim.market.config import REPO_ROOT, WEI_PER_UNIT, MarketConfig
from tbcim.results import new_figure, plot_mean, save_figure, write_csv
from tbcim.seeding import rows_over_seeds

DEFAULT_MARKET = REPO_ROOT / "configs" / "market" / "default.toml"
QUICK = {"rounds": 10, "tasks": 1}
FULL = {"rounds": 20, "tasks": 2}
#: setting -> dotted overrides of the market config.
SETTINGS: dict[str, dict[str, Any]] = {
    "p_g=1e-2": {"market.gas_price": 0.01},
    "p_g=2e-2": {"market.gas_price": 0.02},
    "p_g=4e-2": {"market.gas_price": 0.04},
    "no blockchain": {"market.blockchain_cost": False, **NO_DEFENCE},
    # The sensitivity row: what the comparison depends on (not part of either rule).
    "no blockchain, no attack": {
        "market.blockchain_cost": False,
        **NO_DEFENCE,
        "fl.attack": "none",
    },
}
GAS_SETTINGS = ("p_g=1e-2", "p_g=2e-2", "p_g=4e-2")
ADVERSITY = {"fl.attack": "sign_flip", "fl.attack_fraction": 0.2, "fl.attack_start_round": 0}


def market_config(ctx: FigureContext, setting: str, seed: int) -> MarketConfig:
    """The default market with this setting's overrides, the adversity and the failure window."""
    size = QUICK if ctx.quick else FULL
    raw: dict[str, Any] = read_config(DEFAULT_MARKET, "--config")
    servers = int(raw["chain"]["servers"])
    failed = np.random.default_rng(seed).choice(
        servers, size=max(1, round(FAILED_SHARE * servers)), replace=False
    )
    start, end = failure_window(size["rounds"])
    changes = {
        "market.tasks": size["tasks"],
        "fl.global_rounds": size["rounds"],
        "fl.seed": seed,
        **ADVERSITY,  # a setting may switch the attack off (the sensitivity row)
        "failure.servers": sorted(int(s) for s in failed),
        "failure.start": start,
        "failure.end": end,
        **SETTINGS[setting],
    }
    for key, value in changes.items():
        table, _, name = key.partition(".")
        raw.setdefault(table, {})[name] = value
    return MarketConfig.from_dict(raw)


def one_market(config: MarketConfig, folder_path: str, label: str) -> dict[str, Any]:
    """One market run on a fresh anvil node into ``folder_path``; its summary."""
    from chain_node.anvil import running_anvil
    from tbcim.market.folder import RunFolder
    from tbcim.market.run import prepare_market, run_market

    setup = prepare_market(config)
    folder = RunFolder.create(folder_path, config.to_dict(), config.seed, None)
    accounts = 1 + config.servers + sum(setup.counts)
    with running_anvil("--gas-limit", "30000000", accounts=accounts) as url:
        return run_market(
            config, folder, url, lambda line: print(f"[{label}] {line}", flush=True), setup
        )


def _job(args: tuple[MarketConfig, str, str]) -> dict[str, Any]:
    return one_market(*args)


def market_runs(ctx: FigureContext) -> dict[str, dict[int, dict[str, Any]]]:
    """Every setting at every seed (run once per invocation, ``ctx.jobs`` at a time)."""

    def run() -> dict[str, dict[int, dict[str, Any]]]:
        keys = [(name, s) for name in SETTINGS for s in ctx.seeds]
        jobs = [
            (market_config(ctx, name, s), str(_folder(ctx, name, s)), f"{name} seed {s}")
            for name, s in keys
        ]
        ctx.log(f"  {len(jobs)} market run(s) on anvil, {ctx.jobs} at a time")
        done = in_processes(_job, jobs, ctx.jobs)
        out: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in SETTINGS}
        for (name, s), summary in zip(keys, done, strict=True):
            out[name][s] = summary
        return out

    result: dict[str, dict[int, dict[str, Any]]] = ctx.once("market-runs", run)
    return result


def _folder(ctx: FigureContext, setting: str, seed: int) -> Any:
    slug = setting.replace("=", "-").replace(" ", "-")
    return ctx.out / "runs" / "market" / f"{slug}-seed{seed}"


def revenue(summary: dict[str, Any]) -> dict[str, float]:
    """Average ES revenue per task (over the candidate ESs), the winners' count and tasks met."""
    per_task = []
    winners, met = [], []
    for task in summary["tasks"]:
        cost = {b["server"]: b["cost"] for b in task["bids"]}
        paid = {int(s): int(w) / WEI_PER_UNIT for s, w in task["payments"].items()}
        trained = task["final_accuracy"] is not None
        profit = [
            paid.get(s, 0.0) - (cost[s] if trained and s in task["winners"] else 0.0)
            for s in range(summary["servers"])
        ]
        per_task.append(float(np.mean(profit)))
        winners.append(len(task["winners"]))
        met.append(bool(task["target_met"]))
    return {
        "average_revenue": float(np.mean(per_task)),
        "winners": float(np.mean(winners)),
        "tasks_met": float(np.mean(met)),
    }


def accuracy_curve(summary: dict[str, Any], rounds: int) -> list[float]:
    """Task accuracy per round, averaged over the tasks (a task never trained counts as 0)."""
    curves = [
        [r["accuracy"] for r in task["rounds"]] if task["rounds"] else [0.0] * rounds
        for task in summary["tasks"]
    ]
    return [float(v) for v in np.mean(curves, axis=0)]


def _conditions(ctx: FigureContext) -> str:
    size = QUICK if ctx.quick else FULL
    start, end = failure_window(size["rounds"])
    return (
        f"configs/market/default.toml (5 ESs x 3-10 EDs, digits, RANet-exact, reward 0.5, target "
        f"0.7), {size['tasks']} task(s) of {size['rounds']} rounds per seed, on anvil; 20 % of "
        "EDs flip the sign of their updates from round 0 and 1 of 5 ESs is down in rounds "
        f"{start + 1}-{end}; payment only "
        "if the attested accuracy meets the target; 'no blockchain' = no c_s^b and no update "
        "verification (plain FedAvg)"
    )


def fig9(ctx: FigureContext) -> Claim:
    """Fig. 9: average ES revenue per setting (module docstring's rule)."""
    runs = market_runs(ctx)
    earned = {name: {s: revenue(runs[name][s]) for s in ctx.seeds} for name in SETTINGS}
    per_seed = {s: [{"setting": name, **earned[name][s]} for name in SETTINGS] for s in ctx.seeds}
    rows = rows_over_seeds(per_seed, ("average_revenue", "winners", "tasks_met"))
    write_csv(ctx.path(".csv"), rows)
    fig, ax = new_figure(figsize=(6.4, 4.2))
    names = list(SETTINGS)
    means = [row["average_revenue"] for row in rows]
    stds = [row.get("average_revenue_std", 0.0) for row in rows]
    ax.bar(names, means, yerr=stds, capsize=4, color=["C0", "C1", "C2", "grey", "silver"])
    ax.tick_params(axis="x", labelsize=7)
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_ylabel("average ES revenue per task (ether)")
    ax.set_title(f"Fig. 9: ES revenue (mean ± std over seeds {list(ctx.seeds)})")
    save_figure(fig, ctx.path(".png"))
    by = {row["setting"]: row for row in rows}
    base = by["no blockchain"]["average_revenue"]
    parts = {
        "1e-2_above_no_blockchain": by["p_g=1e-2"]["average_revenue"] > base,
        "2e-2_above_no_blockchain": by["p_g=2e-2"]["average_revenue"] > base,
        "4e-2_not_above_no_blockchain": by["p_g=4e-2"]["average_revenue"] <= base,
    }
    measured = {
        name: {
            label: stats([earned[name][s][key] for s in ctx.seeds])
            for label, key in (
                ("average_revenue", "average_revenue"),
                ("winners_per_task", "winners"),
                ("share_of_tasks_meeting_target", "tasks_met"),
            )
        }
        for name in SETTINGS
    }
    return ctx.claim(
        "at gas prices 1e-2 and 2e-2 joining the blockchain gives a higher average revenue than "
        "no blockchain; at 4e-2 the advantage is gone",
        all(parts.values()),
        {**measured, "parts": parts},
        _conditions(ctx),
        "average ES revenue per task (ether): "
        + ", ".join(f"{n} {pm(measured[n]['average_revenue'], 4)}" for n in SETTINGS)
        + "; tasks meeting the target: "
        + ", ".join(
            f"{n} {measured[n]['share_of_tasks_meeting_target']['mean']:.2f}" for n in SETTINGS
        ),
    )


def fig10(ctx: FigureContext) -> Claim:
    """Fig. 10: accuracy per round per setting (module docstring's rule)."""
    runs = market_runs(ctx)
    rounds = max(
        [
            len(t["rounds"])
            for by_seed in runs.values()
            for r in by_seed.values()
            for t in r["tasks"]
        ]
    )
    curves = {
        name: {s: accuracy_curve(runs[name][s], rounds) for s in ctx.seeds} for name in SETTINGS
    }
    per_seed = {
        s: [{"round": r + 1, **{n: curves[n][s][r] for n in SETTINGS}} for r in range(rounds)]
        for s in ctx.seeds
    }
    rows = rows_over_seeds(per_seed, list(SETTINGS))
    write_csv(ctx.path(".csv"), rows)
    fig, ax = new_figure(figsize=(6.4, 4.2))
    xs = [row["round"] for row in rows]
    for name in SETTINGS:
        plot_mean(ax, xs, rows, name, label=name)
    ax.set_xlabel("global round")
    ax.set_ylabel("task test accuracy")
    ax.set_title(f"Fig. 10: accuracy by gas price (mean ± std over seeds {list(ctx.seeds)})")
    ax.legend(fontsize=7)
    save_figure(fig, ctx.path(".png"))
    final = {n: stats([curves[n][s][-1] for s in ctx.seeds]) for n in SETTINGS}
    trained = {
        n: float(np.mean([t["rounds"] != [] for s in ctx.seeds for t in runs[n][s]["tasks"]]))
        for n in SETTINGS
    }
    area = {n: stats([float(np.mean(curves[n][s])) for s in ctx.seeds]) for n in SETTINGS}

    def rising(by_setting: dict[str, dict[str, float]]) -> bool:
        values = [by_setting[n]["mean"] for n in GAS_SETTINGS]
        return all(a < b for a, b in itertools.pairwise(values))

    parts = {
        "final_rises_with_gas_price": rising(final),
        "mean_over_rounds_rises_with_gas_price": rising(area),
        "1e-2_final_above_no_blockchain": final["p_g=1e-2"]["mean"]
        > final["no blockchain"]["mean"],
    }
    return ctx.claim(
        "a higher gas price gives faster convergence and a higher final accuracy, and every gas "
        "price is above no blockchain",
        all(parts.values()),
        {
            "final_accuracy": final,
            "mean_accuracy_over_rounds": area,
            "share_of_tasks_trained": trained,
            "parts": parts,
        },
        _conditions(ctx) + "; a task the mechanism awarded to no ES trains nothing and counts as 0",
        "final accuracy: "
        + ", ".join(f"{n} {pm(final[n])}" for n in SETTINGS)
        + "; tasks trained: "
        + ", ".join(f"{n} {trained[n]:.2f}" for n in SETTINGS),
    )
