"""`tbcim matching` and the experiments: outputs, determinism by seed, input errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tbcim.cli import main
from tbcim.matching import experiments


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("method", ["subopt", "opt", "foga", "rsbm"])
def test_run_writes_a_deterministic_result(tmp_path: Path, method: str) -> None:
    args = ["matching", "run", "--buyers", "3", "--data-sellers", "4", "--uav-sellers", "4"]
    for sub in ("a", "b"):
        out = str(tmp_path / f"{sub}.json")
        assert main([*args, "--method", method, "--seed", "5", "--json", out]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a == b
    assert len(a["triples"]) == 3 and a["unmatched_buyers"] == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["run", "--buyers", "0"], "buyers"),
        (["run", "--method", "opt", "--split", "critical"], "split"),
        (["run", "--method", "subopt", "--split", "vcg_seller"], "split"),
        (["experiment", "fig3", "--instances", "0"], "instances"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    target = ["--out", str(out)] if extra[0] == "experiment" else ["--json", str(out / "r.json")]
    assert main(["matching", *extra, *target]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_run_out_dir_still_works_with_a_deprecation_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`matching run --out DIR` (one file in DIR) is now `--json FILE`; the old flag still works."""
    args = ["matching", "run", "--buyers", "3", "--data-sellers", "4", "--uav-sellers", "4"]
    assert main([*args, "--json", str(tmp_path / "new.json")]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "old")]) == 0
    err = capsys.readouterr().err
    assert "--out is deprecated" in err and "use --json" in err
    old = json.loads((tmp_path / "old" / "matching_run.json").read_text())
    assert old == json.loads((tmp_path / "new.json").read_text())


def test_fig5_is_deterministic_and_shows_the_truthful_point(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        experiments.fig5(tmp_path / sub, seeds=(2,), points=5)
    a, b = _rows(tmp_path / "a" / "fig5.csv"), _rows(tmp_path / "b" / "fig5.csv")
    assert a == b and (tmp_path / "a" / "fig5.png").stat().st_size > 0
    panels = {r["panel"] for r in a}
    assert panels == {"a_data_moves", "b_uav_moves", "c_joint_fixed"}


def test_table2_fig4_and_fig3_write_csv_and_png(tmp_path: Path) -> None:
    rows = experiments.table2(tmp_path, seeds=(0,), instances=1, large_sizes=((10, 10, 10),))
    assert {r["method"] for r in rows} == set(experiments.METHODS)
    assert any(r["size"] == "10/10/10" for r in rows)
    summary = experiments.fig4(tmp_path, seeds=(0,), instances=1)
    assert all(r["negative_utilities"] == 0 for r in summary)
    fig3 = experiments.fig3(tmp_path, seeds=(0,), instances=1, counts=(2,))
    gaps = [r for r in fig3 if r["size"] == "6/8/10" and r["method"] == "Opt"]
    assert gaps and gaps[0]["gap_to_opt_pct"] == 0.0
    for name in ("table2", "fig4", "fig3"):
        assert (tmp_path / f"{name}.csv").exists() and (tmp_path / f"{name}.png").exists()
    assert (tmp_path / "table3.csv").exists()
