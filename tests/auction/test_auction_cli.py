"""`tbcim auction train | eval | plot` end to end on a tiny run, and every input error path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tbcim.cli import main

TINY_TRAIN = """
[train]
hidden_width = 8
n_train = 300
n_val = 30
batch_size = 100
epochs = 2
misreport_steps = 1
val_grid = 6
"""
EVAL_KEYS = {
    "buyer_utility",
    "optimal_buyer_utility",
    "social_welfare",
    "regret_mean",
    "regret_max",
    "ir_violation_rate",
    "monotone",
    "samples",
    "baselines",
}
FAST_EVAL = ["--samples", "60", "--grid-points", "11", "--refine-steps", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "tiny.toml"
    config.write_text(TINY_TRAIN)
    out = folder / "single3.pt"
    argv = ["auction", "train", "--setting", "single-3", "--config", str(config)]
    assert main([*argv, "--seed", "1", "--model", str(out)]) == 0
    return out


def test_train_eval_writes_the_issue_keys(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    assert main(["auction", "eval", "--model", str(trained), "--json", str(out), *FAST_EVAL]) == 0
    result = json.loads(out.read_text())
    assert set(result) >= EVAL_KEYS
    assert result["samples"] == 60 and result["optimal_buyer_utility"] == pytest.approx(0.53125)
    assert {"vcg", "myerson"} <= set(result["baselines"])
    for figures in result["baselines"].values():
        assert {"buyer_utility", "social_welfare", "regret_mean"} <= set(figures)
    assert result["ir_violation_rate"] == 0.0 and isinstance(result["monotone"], bool)
    assert result["train_seed"] == 1 and result["setting"] == "single-3"


def test_train_with_setting_overrides_and_checkpoint(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        '[setting]\npool_size = 300\npool_seed = 3\nname = "tbcim-tiny"\n' + TINY_TRAIN
    )
    model, ckpt = tmp_path / "m.pt", tmp_path / "m.ckpt"
    argv = [
        "auction",
        "train",
        "--setting",
        "tbcim-3",
        "--config",
        str(config),
        "--model",
        str(model),
    ]
    assert main([*argv, "--checkpoint", str(ckpt)]) == 0
    assert ckpt.is_file()
    assert main([*argv, "--checkpoint", str(ckpt), "--resume"]) == 0
    out = tmp_path / "eval.json"
    argv = ["auction", "eval", "--model", str(model), "--json", str(out), "--no-baselines"]
    assert main([*argv, *FAST_EVAL]) == 0
    result = json.loads(out.read_text())
    assert result["setting"] == "tbcim-tiny" and "baselines" not in result


def test_plots_write_png_and_csv(trained: Path, tmp_path: Path, capsys) -> None:
    fig6 = tmp_path / "fig6.png"
    assert main(["auction", "plot", "training", "--model", str(trained), "--png", str(fig6)]) == 0
    rows = list(csv.DictReader(fig6.with_suffix(".csv").open()))
    assert fig6.stat().st_size > 0 and [r["epoch"] for r in rows] == ["1", "2"]
    fig7 = tmp_path / "fig7.png"
    argv = ["auction", "plot", "bids", "--model", str(trained), "--png", str(fig7)]
    assert main([*argv, "--cost", "0.3", "--samples", "50", "--points", "21"]) == 0
    curve = list(csv.DictReader(fig7.with_suffix(".csv").open()))
    summary = json.loads(fig7.with_suffix(".json").read_text())
    assert len(curve) == 21 and fig7.stat().st_size > 0
    assert summary["cost"] == 0.3 and isinstance(summary["win_probability_non_increasing"], bool)
    assert summary["utility_max"] >= summary["utility_at_cost"]
    at_cost = next(r for r in curve if float(r["bid"]) == pytest.approx(0.3))
    assert summary["utility_at_cost"] == pytest.approx(float(at_cost["utility"]))
    assert "utility peaks at bid" in capsys.readouterr().out


def _fails(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_input_errors(tmp_path: Path, capsys) -> None:
    out = tmp_path / "never.pt"
    base = ["auction", "train", "--model", str(out)]
    _fails([*base, "--setting", "single-9"], "unknown setting 'single-9'", capsys)
    _fails([*base, "--setting", "single-3", "--preset", "huge"], "preset: ranet has no", capsys)
    _fails([*base, "--setting", "single-3", "--mechanism", "nope"], "mechanism: unknown", capsys)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepoch = 3\n")
    _fails([*base, "--setting", "single-3", "--config", str(bad)], "train.epoch: unknown", capsys)
    bad.write_text("[train]\nlr = -1.0\n")
    _fails(
        [*base, "--setting", "single-3", "--config", str(bad)],
        "train.lr: must be a positive finite number",
        capsys,
    )
    bad.write_text('[setting]\nbase = "single-5"\n')
    _fails([*base, "--setting", "single-3", "--config", str(bad)], "setting.base", capsys)
    bad.write_text("[setting]\nvalue = -1.0\n")
    _fails([*base, "--setting", "single-3", "--config", str(bad)], "setting.value: must be", capsys)
    _fails([*base, "--setting", "single-3", "--resume"], "resume: needs --checkpoint", capsys)
    assert not out.exists()


def test_eval_and_plot_input_errors(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never.json"
    base = ["auction", "eval", "--json", str(out)]
    _fails([*base, "--model", str(tmp_path / "none.pt")], "no such file", capsys)
    model = ["--model", str(trained)]
    _fails([*base, *model, "--setting", "single-5"], "not 'single-5'", capsys)
    _fails([*base, *model, "--samples", "0"], "samples: must be a positive", capsys)
    _fails([*base, *model, "--grid-points", "1", *FAST_EVAL[:2]], "grid_points", capsys)
    assert not out.exists()
    png = str(tmp_path / "f.png")
    bids = ["auction", "plot", "bids", *model, "--png", png]
    _fails([*bids, "--server", "3"], "server: must be an ES index in [0, 2]", capsys)
    _fails([*bids, "--cost", "1.5"], "cost: must lie in the bid space", capsys)
    _fails([*bids, "--cost", "nan"], "cost: must lie in the bid space", capsys)
    _fails([*bids, "--points", "1"], "points: needs at least 2", capsys)
    _fails([*bids, "--samples", "0"], "samples: must be a positive", capsys)
    _fails(["auction", "plot", "training", "--model", png, "--png", png], "no such file", capsys)
    assert not (tmp_path / "f.png").exists()


def test_old_output_flags_still_work_with_a_deprecation_message(
    trained: Path, tmp_path: Path, capsys
) -> None:
    """`train --out` (now --model) and `plot ... --out` (now --png) work for one more release."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TRAIN)
    old = tmp_path / "old.pt"
    argv = ["auction", "train", "--setting", "single-3", "--config", str(config), "--seed", "1"]
    assert main([*argv, "--out", str(old)]) == 0
    err = capsys.readouterr().err
    assert "--out is deprecated" in err and "use --model" in err
    assert old.is_file()
    fig = tmp_path / "fig6.png"
    assert main(["auction", "plot", "training", "--model", str(old), "--out", str(fig)]) == 0
    assert "use --png" in capsys.readouterr().err
    assert fig.is_file() and fig.with_suffix(".csv").is_file()
    fig7 = tmp_path / "fig7.png"
    bids = ["auction", "plot", "bids", "--model", str(old), "--samples", "20", "--points", "5"]
    assert main([*bids, "--out", str(fig7)]) == 0
    assert "use --png" in capsys.readouterr().err and fig7.is_file()
    # New and old names together, or neither, are usage errors (exit status 2).
    for extra in (["--model", str(old), "--out", str(old)], []):
        with pytest.raises(SystemExit) as stop:
            main([*argv, *extra])
        assert stop.value.code == 2
    assert "--model" in capsys.readouterr().err
