"""`tbcim fl run`: configs validated before any work (errors name the dotted key), and a short
run on the embedded chain writes the whole run folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tbcim.cli import main


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fl]\nalpah = 0.5\n", "fl.alpah: unknown key"),
        ("[fl]\nalpha = 0.0\n", "fl.alpha"),
        ('[fl]\nattack = "bribe"\n', "unknown attack"),
        ('[fl]\ndataset = "mnist"\n', "fl.dataset"),
        ("[chain]\nservers = 0\n", "chain.servers"),
        ("[chain]\nreference_epsilon = 2.0\n", "chain.reference_epsilon"),
        ('[chain]\nnorm_bound = "big"\n', "chain.norm_bound"),
        ("[chain]\nclip = 0.5\n", "chain.clip"),
        ('[chain]\nbootstrap_reference = "yes"\n', "chain.bootstrap_reference"),
        ("[failure]\nservers = [7]\n", "failure.servers"),
        ("[failure]\nservers = [1.5]\n", "failure.servers: must be a list of integers"),
        ("[failure]\nstart = 5\nend = 2\n", "failure.end"),
        ("[market]\nx = 1\n", "market: unknown key"),
    ],
)
def test_bad_configs_are_rejected_before_any_work(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["fl", "run", "--config", str(write(tmp_path, text)), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_more_eds_than_samples_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path, "[fl]\nmin_samples = 200\n[chain]\nservers = 2\neds_per_server = 5\n")
    assert main(["fl", "run", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "min_samples" in capsys.readouterr().err


def test_a_short_run_writes_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(
        tmp_path,
        "[fl]\nlr = 0.1\nlocal_epochs = 1\nglobal_rounds = 2\n"
        "[chain]\nservers = 2\neds_per_server = 2\n"
        "[failure]\nservers = [1]\nstart = 1\nend = 2\n",
    )
    out = tmp_path / "run"
    assert main(["fl", "run", "--config", str(cfg), "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "round   1:" in printed and "round   2:" in printed and "final accuracy" in printed
    for name in (
        "config.json",
        "rounds.json",
        "rounds.csv",
        "ledger.json",
        "summary.json",
        "accuracy.png",
    ):
        assert (out / name).stat().st_size > 0
    config = json.loads((out / "config.json").read_text())
    assert config["fl"]["seed"] == 3 and config["failure"]["servers"] == [1]
    rounds = json.loads((out / "rounds.json").read_text())
    assert [r["failed_servers"] for r in rounds] == [[], [1]]
    assert rounds[1]["participants"] == [0, 1]  # ES 1's EDs (2, 3) cannot reach the chain
    with (out / "rounds.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_model_hash"] == rounds[-1]["model_hash"]
    ledger = json.loads((out / "ledger.json").read_text())
    assert summary["g_e"] > 0 and len(ledger["entries"]) > 0
