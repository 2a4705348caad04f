"""The measurement command behind docs/fl.md runs end to end on a tiny setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tbcim.errors import ConfigError
from tbcim.fl.measure import main, parse_overrides


def test_measure_writes_its_json(tmp_path: Path) -> None:
    cfg = tmp_path / "fl.toml"
    cfg.write_text("[fl]\nlr = 0.1\nlocal_epochs = 1\nmin_samples = 20\n")
    out = tmp_path / "m.json"
    main(["--config", str(cfg), "--n-eds", "4", "--rounds", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["num_params"] == 2410 and result["chain_words"] == 151
    assert len(result["per_round"]) == 2 and len(result["central_accuracy"]) == 2
    assert result["config"]["lr"] == 0.1 and sum(result["data_sizes"]) > 0
    shares = result["per_round"][0]["below_half_step"]
    assert set(shares) == {"8", "10", "12"} and shares["8"] >= shares["12"]


def test_measure_can_aggregate_in_fixed_point(tmp_path: Path) -> None:
    out = tmp_path / "q.json"
    main(["--n-eds", "3", "--rounds", "1", "--quantize-bits", "12", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["quantize_bits"] == 12 and len(result["per_round"]) == 1


def test_overrides_are_toml_literals_or_words() -> None:
    assert parse_overrides(["attack=sign_flip", "alpha=0.1", "seed=3", 'model="cnn"']) == {
        "attack": "sign_flip",
        "alpha": 0.1,
        "seed": 3,
        "model": "cnn",
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["alpha"])
    with pytest.raises(ConfigError, match=r"fl.alpah"):
        main(["--set", "alpah=1", "--json", "/dev/null"])
