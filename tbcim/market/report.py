"""A market run's results: summary.json, CSV tables, PNG plots, the chain's records, a table.

Files written into the run folder (besides config.json and progress.json of
:mod:`tbcim.market.folder`):

- ``summary.json``: per task and in total: winners, payments, ED payments, accuracy, whether the
  balances reconciled, gas by contract function, seconds by phase, the mechanism;
- ``tasks.csv`` (one row per task), ``bids.csv`` (one row per ES and task), ``rounds.csv`` (one
  row per FL round), ``ed_payments.csv``;
- ``accuracy.png`` (accuracy per round, one line per task) and ``payments.png`` (bids and
  payments per ES and task);
- ``chain/transactions.json`` (every receipt: hash, contract, function, gas, block, producer)
  and ``chain/market_logs.json`` (the market contract's raw logs, for ``tbcim market verify``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbcim.market.config import WEI_PER_UNIT
from tbcim.market.verify import LOGS, export_logs
from tbcim.results import new_figure, save_figure, write_csv, write_json

if TYPE_CHECKING:
    from chain_node.node import ChainNode


def write_run(folder: Path, summary: dict[str, Any], node: ChainNode) -> None:
    """Every file of the module docstring, from the summary and the chain ``node``."""
    write_json(folder / "summary.json", summary)
    tasks = summary["tasks"]
    write_csv(
        folder / "tasks.csv",
        [
            {
                "task": t["task"],
                "task_id": t["task_id"],
                "status": t["status"],
                "winners": " ".join(map(str, t["winners"])),
                "paid_units": sum(int(v) for v in t["payments"].values()) / WEI_PER_UNIT,
                "ed_paid_units": sum(int(v) for v in t["ed_payments"].values()) / WEI_PER_UNIT,
                "final_accuracy": t["final_accuracy"],
                "reconciled": t["reconciled"],
                "gas": sum(row["gas"] for row in t["gas_by_function"].values()),
                "seconds": sum(
                    v for k, v in t["seconds_by_phase"].items() if not k.startswith("round")
                ),
                "note": t["note"],
            }
            for t in tasks
        ],
    )
    write_csv(
        folder / "bids.csv",
        [
            {
                "task": t["task"],
                **{k: v for k, v in b.items() if k != "workers"},
                "workers": " ".join(map(str, b["workers"])),
                "won": b["server"] in t["winners"],
                "payment_wei": t["payments"].get(str(b["server"]), "0"),
            }
            for t in tasks
            for b in t["bids"]
        ],
    )
    write_csv(
        folder / "rounds.csv",
        [
            {
                "task": t["task"],
                "round": r["round"] + 1,
                "accuracy": r["accuracy"],
                "included": len(r["accepted"]),
                "participants": len(r["participants"]),
                "gas": r["gas"],
                "model_hash": r["model_hash"],
            }
            for t in tasks
            for r in t["rounds"]
        ],
    )
    write_csv(
        folder / "ed_payments.csv",
        [
            {"task": t["task"], "ed": ed, "wei": wei, "profit": t["ed_profit"].get(ed)}
            for t in tasks
            for ed, wei in t["ed_payments"].items()
        ],
    )
    node.ledger.save(folder / "chain" / "transactions.json")
    export_logs(node.kept_logs.get("FLMarket", []), folder / LOGS)
    _plot(folder, tasks, summary["servers"])


def _plot(folder: Path, tasks: list[dict[str, Any]], servers: int) -> None:
    fig, ax = new_figure(figsize=(6, 3.5))
    for t in tasks:
        if t["rounds"]:
            ax.plot(
                [r["round"] + 1 for r in t["rounds"]],
                [r["accuracy"] for r in t["rounds"]],
                marker=".",
                label=f"task {t['task'] + 1}",
            )
    ax.set_xlabel("global round")
    ax.set_ylabel("task test accuracy")
    ax.set_title("BCFL of each task's winners")
    if any(t["rounds"] for t in tasks):
        ax.legend()
    save_figure(fig, folder / "accuracy.png")
    fig, axes = new_figure(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        es = list(range(servers))
        bids = {b["server"]: b["cost"] for b in t["bids"]}
        pays = {int(s): int(w) / WEI_PER_UNIT for s, w in t["payments"].items()}
        ax.bar([s - 0.2 for s in es], [bids.get(s, 0.0) for s in es], 0.4, label="bid (cost)")
        ax.bar([s + 0.2 for s in es], [pays.get(s, 0.0) for s in es], 0.4, label="payment")
        ax.set_xlabel("ES")
        ax.set_title(f"task {t['task'] + 1}: {t['status']}")
    axes[0][0].set_ylabel("money units (ether)")
    axes[0][0].legend()
    save_figure(fig, folder / "payments.png")


def summary_table(summary: dict[str, Any]) -> str:
    """The end-of-run table: per task (bids and payments in money units; ES profit = payment
    − cost; ED pay = Σ V_i of the paid EDs, ED profit = Σ π_i (34)), then gas by function and
    time by phase."""
    lines = [
        f"{'task':>4} {'status':<10} {'winners':<10} {'bids (units)':<34} {'payments':<26} "
        f"{'ES profit':<22} {'ED pay':>8} {'ED profit':>9} {'accuracy':>8} {'ok':>3}"
    ]
    for t in summary["tasks"]:
        bids = " ".join(f"{b['cost']:.3f}" if b["bids"] else "-" for b in t["bids"])
        pays = " ".join(f"{int(v) / WEI_PER_UNIT:.3f}" for v in t["payments"].values())
        profit = " ".join(f"{v:+.3f}" for v in t["es_profit"].values())
        ed = sum(int(v) for v in t["ed_payments"].values()) / WEI_PER_UNIT
        ed_profit = sum(t["ed_profit"].get(e, 0.0) for e in t["ed_payments"])
        acc = "-" if t["final_accuracy"] is None else f"{t['final_accuracy']:.4f}"
        lines.append(
            f"{t['task'] + 1:>4} {t['status']:<10} {t['winners']!s:<10} {bids:<34} "
            f"{pays or '-':<26} {profit or '-':<22} {ed:>8.4f} {ed_profit:>9.4f} {acc:>8} "
            f"{'yes' if t['reconciled'] else 'NO':>3}"
        )
        if t["note"]:
            lines.append(f"     note: {t['note']}")
    lines.append("\ngas by contract function (all tasks):")
    for name, row in sorted(summary["gas_by_function"].items(), key=lambda kv: -kv[1]["gas"]):
        lines.append(f"  {name:<36} {row['calls']:>6} calls {row['gas']:>14,} gas")
    lines.append("\nseconds by phase (all tasks):")
    for name, seconds in summary["seconds_by_phase"].items():
        lines.append(f"  {name:<14} {seconds:8.1f} s")
    return "\n".join(lines)
