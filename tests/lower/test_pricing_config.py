"""`tbcim pricing` configuration: TOML/JSON, explicit markets, and every bad-input path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.lower.config import load_config, parse_config

EXPLICIT_TOML = """
[market]
gas_price = 0.04

[selection]
rule = "all"

[task]
reference = [0.5, 0.3, 0.2]

[[servers]]
[[servers.eds]]
data_size = 3000
labels = [0.5, 0.3, 0.2]
gamma = 2e-7
beta = 1e-8
power = 0.3
rate = 10
phi = 2e-4
[[servers.eds]]
label_counts = [100, 900, 0]
gamma = 2e-7
beta = 1e-8
power = 0.3
rate = 10
phi = 2e-4
"""

ED = {
    "data_size": 3000,
    "labels": [0.5, 0.5],
    "gamma": 2e-7,
    "beta": 1e-8,
    "power": 0.3,
    "rate": 10,
    "phi": 2e-4,
}
EXPLICIT = {"task": {"reference": [0.5, 0.5]}, "servers": [{"eds": [ED]}]}


def _with(path: list[Any], value: Any, base: dict[str, Any] = EXPLICIT) -> dict[str, Any]:
    """A deep copy of ``base`` with the entry at ``path`` set (or deleted when value is ...)."""
    raw = copy.deepcopy(base)
    node: Any = raw
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


def test_toml_explicit_market_is_parsed(tmp_path: Path) -> None:
    file = tmp_path / "market.toml"
    file.write_text(EXPLICIT_TOML)
    config = load_config(file)
    assert config.scenario.market.gas_price == 0.04
    assert config.scenario.selection.rule == "all"
    assert config.eds is not None and config.eds.shape == (1, 2)
    assert config.eds.data_size[0].tolist() == [3000.0, 1000.0]
    assert config.eds.theta[0] == pytest.approx([0.0, 0.4 + 0.6 + 0.2])


def test_json_scenario_config_is_parsed(tmp_path: Path) -> None:
    file = tmp_path / "scenario.json"
    raw = {"scenario": {"n_servers": 3, "data_size": [500, 800]}, "quality": {"a4": 1.0}}
    file.write_text(json.dumps(raw))
    config = load_config(file)
    assert config.eds is None and config.scenario.n_servers == 3
    assert config.scenario.data_size == (500.0, 800.0) and config.scenario.quality.a4 == 1.0


def test_no_config_gives_defaults() -> None:
    config = load_config(None)
    assert config.eds is None and config.scenario.n_servers == 5


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"colour": 1}, "colour"),
        ({"market": {"gas": 1}}, "market.gas"),
        ({"market": {"gas_price": -1}}, "market.gas_price"),
        ({"market": {"beta": 1}}, "market.beta"),
        ({"market": {"kappa": "big"}}, "market.kappa"),
        ({"quality": {"a1": 0}}, "quality.a1"),
        ({"selection": {"rule": "worst"}}, "selection.rule"),
        ({"selection": {"rule": 3}}, "selection.rule"),
        ({"scenario": {"min_eds": 0}}, "scenario.min_eds"),
        ({"scenario": {"min_eds": 8, "max_eds": 4}}, "scenario.min_eds"),
        ({"scenario": {"n_servers": 2.5}}, "scenario.n_servers"),
        ({"scenario": {"gamma": [1e-7]}}, "scenario.gamma"),
        ({"scenario": {"gamma": [0, 1e-7]}}, "scenario.gamma"),
        ({"scenario": {"beta": [2e-8, 1e-8]}}, "scenario.beta"),
        ({"scenario": {"phi": 1e-4}}, "scenario.phi"),
        ({"scenario": {"ed_concentration_weights": [1, 1]}}, "scenario.ed_concentration_weights"),
        ({"scenario": {"task_concentration": "x"}}, "scenario.task_concentration"),
        ({"task": {"reference": [1.0]}}, "task"),
        ({"servers": []}, "task.reference"),
        ([1, 2], "config"),
    ],
)
def test_bad_scenario_values_name_the_field(raw: Any, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (["servers"], [], "servers", "non-empty"),
        (["servers", 0, "eds"], [], "servers[0].eds", "non-empty"),
        (["servers", 0, "eds", 0, "data_size"], 0, "servers[0].eds[0].data_size", "positive"),
        (["servers", 0, "eds", 0, "data_size"], -5, "servers[0].eds[0].data_size", "positive"),
        (["servers", 0, "eds", 0, "labels"], [0.6, 0.6], "servers[0].eds[0].labels", "sum to one"),
        (["servers", 0, "eds", 0, "gamma"], 0.0, "servers[0].eds[0].gamma", "positive"),
        (["servers", 0, "eds", 0, "beta"], -1e-8, "servers[0].eds[0].beta", "positive"),
        (["servers", 0, "eds", 0, "power"], 0, "servers[0].eds[0].power", "positive"),
        (["servers", 0, "eds", 0, "rate"], -2, "servers[0].eds[0].rate", "positive"),
        (["servers", 0, "eds", 0, "phi"], 0, "servers[0].eds[0].phi", "positive"),
        (["servers", 0, "eds", 0, "phi"], ..., "servers[0].eds[0].phi", "missing"),
        (["servers", 0, "eds", 0, "data_size"], ..., "servers[0].eds[0].data_size", "missing"),
        (["servers", 0, "eds", 0, "mood"], 1, "servers[0].eds[0].mood", "unknown"),
        (["servers", 0, "eds", 0, "labels"], ..., "servers[0].eds[0].labels", "exactly one"),
        (["task", "reference"], [0.2, 0.3, 0.5], "reference", "3 classes"),
        (["task", "reference"], [0.2, 0.3], "reference", "sum to one"),
        (["task", "reference"], ..., "task.reference", "task's distribution"),
    ],
)
def test_bad_explicit_markets_name_the_field(path, value, field, message) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_with(path, value))
    assert err.value.field == field and message in err.value.problem


def test_label_counts_of_an_ed_with_no_data_are_rejected() -> None:
    ed = {k: v for k, v in ED.items() if k not in ("labels", "data_size")}
    raw = _with(["servers", 0, "eds"], [{**ed, "label_counts": [0, 0]}])
    with pytest.raises(ConfigError, match="no data") as err:
        parse_config(raw)
    assert err.value.field == "servers[0].eds[0].label_counts"
    raw = _with(["servers", 0, "eds"], [{**ed, "label_counts": [5, 5], "data_size": 11}])
    with pytest.raises(ConfigError, match="differs"):
        parse_config(raw)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[market\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(bad)


def test_explicit_market_pads_unequal_servers() -> None:
    raw = _with(["servers"], [{"eds": [ED]}, {"eds": [ED, ED, ED]}])
    eds = parse_config(raw).eds
    assert eds is not None and eds.present.tolist() == [[True, False, False], [True, True, True]]
    assert np.all(eds.theta[eds.present] == 0.0)
