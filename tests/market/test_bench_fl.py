"""scripts/bench_fl.py: its run configs, its aggregation into the issue's keys, its goals and its
refusals, on hand-made results (the runs themselves are the benchmark, not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.market.training import TrainingConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_fl.py"
CONFIG = SCRIPT.parents[1] / "configs" / "bench" / "fl.toml"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fl", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fl"] = module
    spec.loader.exec_module(module)
    return module


def result(final: float, malicious: tuple[int, int], honest: tuple[int, int]) -> dict:
    return {"final_accuracy": final, "malicious": list(malicious), "honest": list(honest)}


def test_each_run_changes_what_its_name_says(bench: ModuleType) -> None:
    base = TrainingConfig.load(CONFIG)
    ideal = bench.run_config(base, "ideal", 4)
    assert ideal.selection.strategy == "ideal" and ideal.run.fl.attack == "none"
    assert ideal.run.chain.reference_epsilon == -1.0 and ideal.run.chain.clip == 0.0
    assert ideal.run.fl.seed == 4
    assert bench.run_config(base, "iid", 0).run.fl.partition == "iid"
    failure = bench.run_config(base, "ours_failure", 0).run.failure
    rounds = base.run.fl.global_rounds
    assert (failure.start, failure.end) == (round(0.15 * rounds), round(0.30 * rounds))
    assert len(failure.servers) == 1  # 20 % of 5 ESs
    assert bench.run_config(base, "ours", 0).run.failure.servers == ()


def test_aggregate_pools_the_four_attacks_and_reports_mean_and_sample_std(
    bench: ModuleType,
) -> None:
    seeds = [0, 1]
    runs = {
        "ours": {0: result(0.8, (10, 10), (40, 2)), 1: result(0.9, (10, 9), (40, 0))},
        "ours_scaling": {0: result(0.7, (10, 10), (40, 4)), 1: result(0.7, (10, 10), (40, 0))},
        "ours_label_flip": {0: result(0.5, (10, 0), (40, 0)), 1: result(0.6, (10, 1), (40, 0))},
        "ideal": {0: result(1.0, (0, 0), (50, 0)), 1: result(0.8, (0, 0), (50, 0))},
    }
    out = bench.aggregate(runs, seeds, [0.95, 0.97])
    assert out["ours_final_accuracy"] == pytest.approx(0.85)
    assert out["ours_final_accuracy_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert out["ideal_final_accuracy"] == pytest.approx(0.9)
    # sign-flip and scaling pool: 39 of 40 malicious, 6 of 160 honest; label flip is apart
    assert out["malicious_rejected_rate"] == pytest.approx(39 / 40)
    assert out["honest_rejected_rate"] == pytest.approx(6 / 160)
    assert out["per_attack"]["label_flip"]["malicious_rejected_rate"] == pytest.approx(1 / 20)
    assert out["accuracy_under_attack"]["scaling"] == pytest.approx(0.7)
    assert out["central_final_accuracy"] == pytest.approx(0.96)
    goals = bench.goals({**out, "accuracy_no_attack": 0.86, "s_per_round": 4.0})
    assert not goals["ours_at_least_95pct_of_ideal"]["met"]  # 0.85 / 0.9 = 0.944
    assert goals["ours_at_least_95pct_of_ideal"]["value"] == pytest.approx(0.85 / 0.9)
    assert goals["malicious_rejected_at_least_95pct"]["met"]
    assert goals["honest_rejected_at_most_5pct"]["met"]
    assert goals["sign_flip_within_2_points"]["met"]  # 0.86 - 0.85
    assert not goals["scaling_within_2_points"]["met"]  # 0.86 - 0.70
    assert not goals["round_at_most_3s_embedded"]["met"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--runs", "ours,best"], "--runs"),
        (["--seeds", "1,1"], "--seeds"),
        (["--jobs", "0"], "--jobs"),
    ],
)
def test_bad_arguments_are_refused_before_any_run(
    bench: ModuleType, argv: list[str], field: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    with pytest.raises(ConfigError) as err:
        bench.main([*argv, "--json", str(out)])
    assert err.value.field == field
    assert not out.exists()


def test_keep_takes_the_other_runs_of_an_earlier_file_of_the_same_config(
    bench: ModuleType, tmp_path: Path
) -> None:
    import json

    base = TrainingConfig.load(CONFIG)
    earlier = {
        "seeds": [0, 1],
        "resolved_config": {"config": json.loads(json.dumps(base.to_dict()))},
        "runs": {"ours": {"0": {"a": 1}, "1": {"a": 2}}, "ideal": {"0": {"b": 1}, "1": {"b": 2}}},
        "timing": {"s_per_round": 1.0},
    }
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps(earlier))
    kept = bench.kept_runs(path, base, [0, 1], ["ours"])
    assert kept["runs"] == {"ideal": {0: {"b": 1}, 1: {"b": 2}}}
    assert kept["timing"] == {"s_per_round": 1.0}
    with pytest.raises(ConfigError) as err:
        bench.kept_runs(path, base, [0, 2], ["ours"])
    assert err.value.field == "--keep"
    other = base.replace(**{"fl.lr": 0.3})
    with pytest.raises(ConfigError):
        bench.kept_runs(path, other, [0, 1], ["ours"])
