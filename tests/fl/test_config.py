"""The [fl] table: defaults from the paper, every bad key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tbcim.configfile import read_config
from tbcim.errors import ConfigError
from tbcim.fl.config import FLConfig


def test_defaults_are_the_papers_where_it_gives_them() -> None:
    c = FLConfig()
    assert (c.local_epochs, c.lr, c.global_rounds) == (5, 0.01, 100)  # δ1, η, δg (V-A)
    assert c.dataset == "digits" and c.model_name == "mlp" and c.attack == "none"
    assert FLConfig(dataset="cifar10", data_dir="/x").model_name == "cnn"
    assert FLConfig(model="cnn").model_name == "cnn"


def test_from_dict_and_a_toml_file(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('[fl]\nalpha = 1\nattack = "sign_flip"\nattack_fraction = 0.3\nseed = 4\n')
    c = FLConfig.from_dict(read_config(f)["fl"])
    assert (c.alpha, c.attack, c.attack_fraction, c.seed) == (1.0, "sign_flip", 0.3, 4)
    assert FLConfig.from_dict(None) == FLConfig()


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        ({"alpah": 1.0}, "fl.alpah", "unknown key"),
        ({"alpha": "big"}, "fl.alpha", "must be a number"),
        ({"seed": 1.5}, "fl.seed", "must be an integer"),
        ({"alpha": 0.0}, "fl.alpha", "must be > 0"),
        ({"alpha": -2.0}, "fl.alpha", "must be > 0"),
        ({"dataset": "mnist"}, "fl.dataset", "unknown dataset 'mnist'"),
        ({"dataset": "cifar10"}, "fl.data_dir", "set data_dir"),
        ({"model": "resnet"}, "fl.model", "unknown model 'resnet'"),
        ({"partition": "shards"}, "fl.partition", "unknown partition"),
        ({"attack": "ddos"}, "fl.attack", "unknown attack 'ddos'; known"),
        ({"min_samples": 0}, "fl.min_samples", "positive integer"),
        ({"global_rounds": 0}, "fl.global_rounds", "positive integer"),
        ({"threads": 0}, "fl.threads", "positive integer"),
        ({"local_epochs": 0}, "fl.local_epochs", "positive integer"),
        ({"batch_size": 0}, "fl.batch_size", "positive integer"),
        ({"lr": -0.01}, "fl.lr", "positive"),
        ({"task_concentration": 0.0}, "fl.task_concentration", "> 0"),
        ({"reference_uniform_weight": 1.5}, "fl.reference_uniform_weight", "[0, 1]"),
        ({"attack_fraction": -0.1}, "fl.attack_fraction", "[0, 1]"),
        ({"attack_start_round": -1}, "fl.attack_start_round", ">= 0"),
        ({"attack_scale": float("inf")}, "fl.attack_scale", "finite"),
        ({"copy_noise": -1.0}, "fl.copy_noise", ">= 0"),
        ({"val_fraction": 0.0}, "fl.val_fraction", "(0, 1)"),
        ({"test_fraction": 1.0}, "fl.test_fraction", "(0, 1)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "fl.test_fraction", "must be < 1"),
        ({"seed": -1}, "fl.seed", "non-negative"),
    ],
)
def test_every_bad_key_is_named(raw: dict, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        FLConfig.from_dict(raw)
    assert err.value.field == field and problem in err.value.problem


def test_a_table_that_is_not_a_table() -> None:
    with pytest.raises(ConfigError, match=r"must be a table"):
        FLConfig.from_dict([1, 2])
