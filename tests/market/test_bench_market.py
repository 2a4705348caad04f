"""scripts/bench_market.py: its flags, its per-seed figures and their aggregation over seeds, on
hand-made summaries shaped like a market run's summary.json (the runs themselves are the
benchmark, not a test: no chain, no training here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tbcim.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_market.py"
DEFAULT = SCRIPT.parents[1] / "configs" / "market" / "default.toml"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_market", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_market"] = module
    spec.loader.exec_module(module)
    return module


def task(
    seconds: dict[str, float], gas: dict[str, tuple[int, int]], accuracy: float | None
) -> dict[str, Any]:
    """A task entry of summary.json: seconds by phase, (calls, gas) by function, accuracy."""
    return {
        "seconds_by_phase": seconds,
        "gas_by_function": {f: {"calls": c, "gas": g} for f, (c, g) in gas.items()},
        "final_accuracy": accuracy,
        "status": "completed" if accuracy is not None else "cancelled",
        "winners": [0, 2] if accuracy is not None else [],
    }


def summary(tasks: list[dict[str, Any]], calibration: float, reconciled: bool = True) -> dict:
    return {
        "tasks": tasks,
        "reconciled": reconciled,
        "seconds_by_phase": {"calibration": calibration, "pricing": 99.0},  # run totals
    }


TRAINED = {
    "pricing": 0.5,
    "publish": 0.25,
    "bidding": 1.0,
    "auction": 0.5,
    "accept": 2.0,
    "round 1": 3.0,
    "round 2": 5.0,
    "round 10": 4.0,
    "training": 13.0,
    "attest": 0.5,
    "settlement": 1.5,
}
CANCELLED = {"pricing": 0.7, "publish": 0.3, "bidding": 1.2, "auction": 0.6, "settlement": 0.2}
GAS_A = {"FLMarket.publishTask": (1, 200_000), "FLAggregator.submitUpdate": (20, 8_000_000)}
GAS_B = {"FLMarket.publishTask": (1, 180_000), "FLMarket.expireTask": (1, 40_000)}


def test_seed_record_means_over_tasks_and_counts_missing_functions_as_zero(
    bench: ModuleType,
) -> None:
    record = bench.seed_record(
        summary([task(TRAINED, GAS_A, 0.8), task(CANCELLED, GAS_B, None)], 7.0), 300.0
    )
    seconds = record["seconds_by_phase"]
    assert seconds["calibration"] == 7.0  # the run's, once: not the run-level pricing total
    assert seconds["pricing"] == pytest.approx((0.5 + 0.7) / 2)
    assert seconds["round 2"] == 5.0  # only the trained task reached it
    assert record["seconds_by_phase_per_task"]["round 2"] == [5.0]
    # a task's total: every phase but the rounds (which "training" holds)
    task_a = sum(v for k, v in TRAINED.items() if not k.startswith("round "))
    assert record["seconds_by_phase_per_task"]["task"] == [task_a, sum(CANCELLED.values())]
    # market order, rounds numerically (round 10 after round 2), calibration first
    assert list(seconds) == [
        "calibration",
        "pricing",
        "publish",
        "bidding",
        "auction",
        "accept",
        "round 1",
        "round 2",
        "round 10",
        "training",
        "attest",
        "settlement",
        "task",
    ]
    gas = record["gas_by_function"]
    assert gas["FLMarket.publishTask"] == {"gas": 190_000.0, "calls": 1.0}
    assert gas["FLAggregator.submitUpdate"] == {"gas": 4_000_000.0, "calls": 10.0}
    assert gas["FLMarket.expireTask"] == {"gas": 20_000.0, "calls": 0.5}
    assert record["gas_by_function_per_task"]["FLMarket.expireTask"] == [0, 40_000]
    assert record["gas_per_task"] == pytest.approx((8_200_000 + 220_000) / 2)
    assert record["gas_per_task"] == pytest.approx(sum(g["gas"] for g in gas.values()))
    assert record["accuracy"] == [0.8, None]
    assert record["status"] == ["completed", "cancelled"]
    assert record["reconciled"] is True and record["tasks"] == 2
    assert record["run_seconds"] == 300.0


def test_aggregate_gives_mean_and_sample_std_over_seeds(bench: ModuleType) -> None:
    slow = {**TRAINED, "bidding": 3.0}
    records = {
        0: bench.seed_record(summary([task(TRAINED, GAS_A, 0.8)], 6.0), 100.0),
        3: bench.seed_record(summary([task(slow, GAS_B, 0.9)], 8.0, reconciled=False), 140.0),
    }
    out = bench.aggregate(records)
    assert out["seeds"] == [0, 3]
    bidding = out["seconds_by_phase"]["bidding"]
    assert bidding["mean"] == pytest.approx(2.0)
    assert bidding["std"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert bidding["n"] == 2
    assert out["seconds_by_phase"]["calibration"]["mean"] == pytest.approx(7.0)
    # a function only one seed called is averaged over that seed alone, and says so
    expire = out["gas_by_function"]["FLMarket.expireTask"]["gas"]
    assert (expire["mean"], expire["std"], expire["n"]) == (40_000.0, 0.0, 1)
    publish = out["gas_by_function"]["FLMarket.publishTask"]["gas"]
    assert publish["mean"] == pytest.approx(190_000.0)
    assert out["gas_per_task"]["mean"] == pytest.approx((8_200_000 + 220_000) / 2)
    assert out["accuracy"][0]["mean"] == pytest.approx(0.85)
    assert out["reconciled"] is False  # one seed did not reconcile
    assert out["run_seconds"]["std"] == pytest.approx(np.std([100.0, 140.0], ddof=1))
    one = bench.aggregate({0: records[0]})
    assert one["seconds_by_phase"]["bidding"] == {"mean": 1.0, "std": 0.0, "n": 1}


def test_markdown_tables_list_every_phase_and_function(bench: ModuleType) -> None:
    record = bench.seed_record(summary([task(TRAINED, GAS_A, 0.8)], 6.0), 100.0)
    text = bench.markdown({"aggregate": bench.aggregate({0: record})})
    assert "| calibration (once per run) | 6.000 |" in text
    assert "| round 10 | 4.000 |" in text
    assert "| `FLAggregator.submitUpdate` | 20.0 | 8,000,000 |" in text
    assert "| **total** | | 8,200,000 |" in text
    assert "±" not in text  # one seed: no spread to show
    lines = text.splitlines()
    # the heaviest function first
    first = next(i for i, line in enumerate(lines) if line.startswith("| `"))
    assert "submitUpdate" in lines[first]


def test_summaries_without_tasks_or_seeds_are_refused(bench: ModuleType) -> None:
    with pytest.raises(ValueError, match="no task"):
        bench.seed_record(summary([], 1.0), 1.0)
    with pytest.raises(ValueError, match="no seed"):
        bench.aggregate({})


def test_flags_and_overrides_reach_each_seed_config(bench: ModuleType, tmp_path: Path) -> None:
    args = bench.parse_args(
        ["--json", str(tmp_path / "b.json"), "--seeds", "2,5", "--tasks", "1", "--rounds", "3"]
    )
    assert args.config == Path("configs/market/default.toml") and args.seeds == (2, 5)
    args.config = DEFAULT
    base, configs = bench.load_configs(args)
    assert sorted(configs) == [2, 5]
    for seed, config in configs.items():
        assert config.seed == seed
        assert config.terms.tasks == 1
        assert config.training.run.fl.global_rounds == 3
        # everything else is the file's
        assert config.terms.gas_price == base.terms.gas_price
        assert config.training.run.fl.lr == base.training.run.fl.lr
    assert bench.parse_args(["--json", "x.json"]).seeds == (0,)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "0,x"], "argument --seeds: comma-separated integers, e.g. 0,1,2, got '0,x'"),
        (["--tasks", "0"], "argument --tasks: must be a positive integer, got '0'"),
        (["--rounds", "-2"], "argument --rounds: must be a positive integer, got '-2'"),
        (["--rounds", "two"], "argument --rounds: must be a positive integer, got 'two'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_malformed_flags_exit_2_naming_the_flag(
    bench: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(["--json", "out.json", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_json_is_required(bench: ModuleType, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args([])
    assert "--json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--seeds", "1,1"], "--seeds"),
        (["--seeds", "-1"], "--seeds"),
        (["--json", "out.txt"], "--json"),
    ],
)
def test_bad_flag_values_name_the_flag(
    bench: ModuleType, argv: list[str], field: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as err:
        bench.parse_args(["--json", str(tmp_path / "b.json"), *argv])
    assert err.value.field == field


def test_keep_refuses_a_folder_holding_that_seed(bench: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "seed-1").mkdir()
    with pytest.raises(ConfigError) as err:
        bench.parse_args(["--json", "b.json", "--seeds", "0,1", "--keep", str(tmp_path)])
    assert err.value.field == "--keep" and "seed-1" in err.value.problem


def test_bad_config_is_refused_before_any_run(bench: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT.read_text().replace('mechanism = "ranet-exact"', 'mechanism = "nope"'))
    keep = tmp_path / "runs"
    with pytest.raises(ConfigError) as err:
        bench.main(["--config", str(bad), "--json", str(tmp_path / "b.json"), "--keep", str(keep)])
    assert err.value.field == "market.mechanism"
    assert not keep.exists() and not (tmp_path / "b.json").exists()
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as err:
        bench.main(["--config", str(missing), "--json", str(tmp_path / "b.json")])
    assert err.value.field == "--config"


def test_script_reports_a_bad_flag_in_one_line(tmp_path: Path) -> None:
    """Run as a script, a TbcimError is one line on stderr and exit status 2."""
    import subprocess

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(tmp_path / "b.json"), "--seeds", "3,3"],
        capture_output=True,
        text=True,
        check=False,
        cwd=SCRIPT.parents[1],
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "bench_market.py: error: --seeds: needs distinct integers >= 0, got [3, 3]"
    ]
