"""scripts/bench_ranet.py: one row per (learner, setting) from config files, and its errors."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest

ROW_KEYS = {
    "setting",
    "mechanism",
    "test_seeds",
    "buyer_utility",
    "buyer_utility_ci95",
    "myerson_ratio",
    "capped_vcg_buyer_utility",
    "regret_mean",
    "regret_max",
    "ir_violation_rate",
    "train_seconds",
    "model",
    "config",
    "goals",
}
TINY = {
    "ranet": "[train]\nhidden_width = 8\nn_train = 300\nn_val = 30\nbatch_size = 100\n"
    "epochs = 1\nmisreport_steps = 1\nmisreport_grid = 0\nval_grid = 6\npatience = 0\n",
    "ranet-exact": "[train]\nhidden_width = 8\nsegments = 4\nn_train = 300\nn_val = 50\n"
    "batch_size = 100\nepochs = 2\n",
}


def _bench_main() -> Callable[[list[str]], int]:
    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_ranet.py"
    spec = importlib.util.spec_from_file_location("bench_ranet", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _configs(folder: Path, setting: str = "single-2") -> Path:
    for mechanism, text in TINY.items():
        (folder / "configs" / mechanism).mkdir(parents=True, exist_ok=True)
        (folder / "configs" / mechanism / f"{setting}.toml").write_text(text)
    return folder / "configs"


def test_bench_writes_one_row_per_learner_and_reuses_models(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = [
        "--json", str(out), "--settings", "single-2", "--seeds", "5,6", "--samples", "40",
        "--regret-samples", "8", "--configs", str(_configs(tmp_path)),
        "--models", str(tmp_path / "models"),
    ]  # fmt: skip
    main = _bench_main()
    assert main(argv) == 0
    rows = json.loads(out.read_text())
    assert [(r["mechanism"], r["setting"]) for r in rows] == [
        ("ranet", "single-2"),
        ("ranet-exact", "single-2"),
    ]
    for row in rows:
        assert set(row) >= ROW_KEYS
        assert row["test_seeds"] == [5, 6] and len(row["buyer_utility_per_seed"]) == 2
        assert Path(row["model"]).is_file() and row["model_source"] == "trained"
        assert row["ir_violation_rate"] == 0.0
    exact = rows[1]
    assert exact["regret_max"] < 1e-12 and exact["goals"]["regret_max_le_1e-5"]
    # Myerson is scored on the same profiles: the ratio is the ratio of the two means.
    ratio = exact["buyer_utility"] / exact["myerson_buyer_utility"]
    assert exact["myerson_ratio"] == pytest.approx(ratio)
    assert main([*argv, "--reuse-models", "--mechanisms", "ranet-exact", "--append"]) == 0
    again = json.loads(out.read_text())
    assert [r["mechanism"] for r in again] == ["ranet", "ranet-exact"]
    assert again[1]["model_source"] == "reused"
    assert again[1]["buyer_utility"] == exact["buyer_utility"]


def test_bench_tbcim_row_has_capped_vcg(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = [
        "--json", str(out), "--settings", "tbcim-3", "--mechanisms", "ranet-exact",
        "--seeds", "7", "--samples", "30", "--regret-samples", "4",
        "--configs", str(_configs(tmp_path, "tbcim-3")), "--models", str(tmp_path / "m"),
    ]  # fmt: skip
    assert _bench_main()(argv) == 0
    (row,) = json.loads(out.read_text())
    assert row["capped_vcg_buyer_utility"] >= row["vcg_buyer_utility"]
    assert "myerson_ratio" not in row and "above_capped_vcg" in row["goals"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--settings", "single-9"], "settings: unknown"),
        (["--settings", ","], "settings: unknown"),
        (["--mechanisms", "regretnet"], "mechanisms: unknown"),
        (["--seeds", "1,x"], "seeds: a comma-separated list"),
        (["--seeds", "3,3"], "seeds: needs distinct"),
        (["--samples", "0"], "samples: must be a positive"),
        (["--regret-samples", "0"], "regret_samples: must be a positive"),
        (["--threads", "0"], "threads: must be a positive"),
        (["--configs", "missing"], "configs: no config file"),
    ],
)
def test_bench_input_errors(extra: list[str], message: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert _bench_main()(["--json", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_checked_in_configs_are_valid_rows() -> None:
    """Every configs/<learner>/<setting>.toml parses for its learner and names a setting."""
    from tbcim.auction.ranet.config import read_config_file
    from tbcim.auction.registry import LEARNED, training_config
    from tbcim.auction.settings import SETTING_NAMES

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.glob("ranet*/*.toml"))
    assert {f.parent.name for f in files} == set(LEARNED)
    for file in files:
        assert file.stem in SETTING_NAMES
        setting, train = read_config_file(file)
        assert setting == {}
        assert training_config(file.parent.name, train, "quick") is not None
