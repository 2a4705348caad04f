"""The figure commands take ``--seeds`` (issue 14 item 2): `tbcim pricing`, `tbcim matching
experiment` and `tbcim auction plot bids`.

Several seeds report every seed's values with their mean and sample std; the mean is checked
with numpy against the per-seed values, and each seed's values against a run of that seed alone.
The old ``--seed N`` still works and says it is deprecated; a bad list exits 2 naming ``seeds``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tbcim.cli import build_parser, main
from tbcim.seeding import numbers_over_seeds, rows_over_seeds, stack_seeds

MODEL = Path(__file__).resolve().parents[1] / "results" / "ranet-exact" / "single-3.pt"
#: Each figure command with the flags it needs, and its output flag.
COMMANDS = {
    "pricing": (["pricing"], "--json", "out.json"),
    "matching": (["matching", "experiment", "fig4", "--instances", "1"], "--out", "out"),
    "auction": (["auction", "plot", "bids", "--model", str(MODEL)], "--png", "out.png"),
}
#: An explicit market (no random draw), as in docs/pricing.md.
FIXED_MARKET = """
[task]
reference = [0.5, 0.5]

[[servers]]
[[servers.eds]]
data_size = 1000
labels = [0.5, 0.5]
gamma = 2e-7
beta = 1e-8
power = 0.3
rate = 10
phi = 2e-4
"""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(np.mean(arr)), float(np.std(arr, ddof=1))


def test_pricing_seeds_report_each_seed_and_their_mean(tmp_path: Path) -> None:
    both, alone = tmp_path / "both.json", tmp_path / "alone.json"
    assert (
        main(["pricing", "--seeds", "0,1", "--json", str(both), "--png", str(tmp_path / "p.png")])
        == 0
    )
    assert main(["pricing", "--seeds", "1", "--json", str(alone)]) == 0
    report = json.loads(both.read_text())
    assert report["seeds"] == [0, 1] and [r["seed"] for r in report["per_seed"]] == [0, 1]
    assert report["per_seed"][1] == json.loads(alone.read_text())  # seed 1 alone: same report
    for key, mean in report["totals_mean"].items():
        values = [r["totals"][key] for r in report["per_seed"]]
        assert (mean, report["totals_std"][key]) == pytest.approx(_mean_std(values))
    assert (tmp_path / "p.png").stat().st_size > 0


def test_pricing_old_seed_flag_is_a_deprecated_synonym(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert main(["pricing", "--seeds", "3", "--json", str(new)]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(["pricing", "--seed", "3", "--json", str(old)]) == 0
    err = capsys.readouterr().err
    assert "--seed is deprecated" in err and "use --seeds" in err
    assert json.loads(old.read_text()) == json.loads(new.read_text())


def test_pricing_refuses_several_seeds_of_a_fixed_market(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "market.toml"
    config.write_text(FIXED_MARKET)
    out = tmp_path / "out.json"
    assert main(["pricing", "--config", str(config), "--seeds", "0,1", "--json", str(out)]) == 2
    assert "seeds: the config fixes the EDs" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_old_seed_flag_parses_as_one_seed(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, flag, name = COMMANDS[command]
    args = build_parser().parse_args([*argv, "--seed", "3", flag, name])
    assert args.seeds == (3,)
    assert "--seed is deprecated" in capsys.readouterr().err
    assert build_parser().parse_args([*argv, flag, name]).seeds == (0,)  # today's default
    assert build_parser().parse_args([*argv, "--seeds", "0,2", flag, name]).seeds == (0, 2)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("seeds", ["--seeds=", "--seeds=-1", "--seeds=0,0", "--seed=-2"])
def test_bad_seeds_exit_2_naming_the_flag_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, seeds: str
) -> None:
    argv, flag, name = COMMANDS[command]
    assert main([*argv, seeds, flag, str(tmp_path / name)]) == 2
    assert "seeds: needs distinct integers >= 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("seeds", [["--seeds", "a"], ["--seed", "1", "--seeds", "2"]])
def test_unparsable_or_doubled_seeds_are_argparse_errors(
    capsys: pytest.CaptureFixture[str], command: str, seeds: list[str]
) -> None:
    argv, flag, name = COMMANDS[command]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, *seeds, flag, name])
    assert exit_.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_matching_fig4_seeds_hold_per_seed_values_and_their_mean(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "matching",
                "experiment",
                "fig4",
                "--instances",
                "1",
                "--seeds",
                "0,1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = _rows(out / "fig4.csv")
    assert len(rows) == 5  # one row per mechanism, merged over the seeds
    for row in rows:
        for key in ("mean_total_payment", "min_pair_utility", "payment_vs_proportional_pct"):
            values = [float(row[f"{key}_seed{s}"]) for s in (0, 1)]
            mean, std = _mean_std(values)
            assert float(row[key]) == pytest.approx(mean)
            assert float(row[f"{key}_std"]) == pytest.approx(std)
    detail = _rows(out / "table3.csv")
    assert {r["seed"] for r in detail} == {"0", "1", ""}  # "": the paper's rows
    assert (out / "fig4.png").stat().st_size > 0


def test_bid_response_seeds_hold_per_seed_curves_and_their_mean(tmp_path: Path) -> None:
    both, alone = tmp_path / "both.png", tmp_path / "alone.png"
    argv = ["auction", "plot", "bids", "--model", str(MODEL), "--samples", "40", "--points", "5"]
    assert main([*argv, "--seeds", "0,1", "--png", str(both)]) == 0
    assert main([*argv, "--seeds", "1", "--png", str(alone)]) == 0
    curve, single = _rows(both.with_suffix(".csv")), _rows(alone.with_suffix(".csv"))
    for row, one in zip(curve, single, strict=True):
        for key in ("win_probability", "utility"):
            assert float(row[f"{key}_seed1"]) == float(one[key])  # seed 1 alone: same curve
            mean, std = _mean_std([float(row[f"{key}_seed{s}"]) for s in (0, 1)])
            assert float(row[key]) == pytest.approx(mean)
            assert float(row[f"{key}_std"]) == pytest.approx(std)
    summary = json.loads(both.with_suffix(".json").read_text())
    assert summary["seeds"] == [0, 1] and [r["seed"] for r in summary["per_seed"]] == [0, 1]
    assert summary["per_seed"][1] == {
        "seed": 1,
        **json.loads(alone.with_suffix(".json").read_text()),
    }
    for key, mean in summary["mean"].items():
        values = [r[key] for r in summary["per_seed"]]
        assert (mean, summary["std"][key]) == pytest.approx(_mean_std(values))
    utility = np.array([float(r["utility"]) for r in curve])
    assert summary["utility_max"] == pytest.approx(utility.max())  # the summary is the mean curve's


def test_rows_over_seeds_merges_lined_up_rows_and_refuses_others() -> None:
    per_seed = {
        4: [{"x": "a", "v": 1.0, "c": float("nan")}, {"x": "b", "v": 2.0, "c": 1}],
        7: [{"x": "a", "v": 3.0, "c": float("nan")}, {"x": "b", "v": 6.0, "c": 1}],
    }
    merged = rows_over_seeds(per_seed, ("v",))
    assert list(merged[0]) == ["x", "v", "v_std", "c", "v_seed4", "v_seed7"]
    assert [r["v"] for r in merged] == [2.0, 4.0]
    assert merged[1]["v_std"] == pytest.approx(np.std([2.0, 6.0], ddof=1))
    assert rows_over_seeds({4: per_seed[4]}, ("v",)) == per_seed[4]  # one seed: unchanged
    with pytest.raises(ValueError, match="same number of rows"):
        rows_over_seeds({4: per_seed[4], 7: per_seed[7][:1]}, ("v",))
    with pytest.raises(ValueError, match="x differs between seeds"):
        rows_over_seeds({4: per_seed[4], 7: [{**per_seed[7][0], "x": "z"}, per_seed[7][1]]}, ("v",))
    assert stack_seeds(per_seed)[2] == {"seed": 7, **per_seed[7][0]}
    assert stack_seeds({4: per_seed[4]}) == per_seed[4]
    stats = numbers_over_seeds([{"n": 1, "b": True, "s": "x"}, {"n": 4, "b": False, "s": "y"}])
    assert stats == {"mean": {"n": 2.5}, "std": {"n": pytest.approx(np.std([1, 4], ddof=1))}}
