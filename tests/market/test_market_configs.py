"""configs/market/*.toml: every shipped market config is valid before any work starts and holds
what its name promises (issue 10 §6: 3, 5 and 10 ESs; p_g = 1e-2, 2e-2, 4e-2; no blockchain
cost), and a bad config is refused with its dotted key, by the loader and by `tbcim market run`
(exit status 2, one line on stderr, no run folder). No chain and no training here: loading the
RANet model and drawing the task's partition are the heaviest steps."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tbcim.cli import main
from tbcim.errors import ConfigError
from tbcim.fl.streams import derive_seed
from tbcim.fl.task import build_task
from tbcim.market.config import MarketConfig
from tbcim.market.outcome import load_mechanism
from tbcim.market.selection import eds_per_server
from tbcim.market.training import CANDIDATES

from .config_files import write_toml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "market"
DEFAULT = CONFIGS / "default.toml"
#: Each shipped config and the dotted keys (of MarketConfig.to_dict) its name promises.
PROMISES: dict[str, dict[str, Any]] = {
    "default": {},
    "es-3": {"chain.servers": 3},
    "es-5": {"chain.servers": 5},
    "es-10": {"chain.servers": 10, "fl.min_samples": 5},  # 81 EDs cannot all hold 10 images
    "gas-1e-2": {"market.gas_price": 0.01},
    "gas-2e-2": {"market.gas_price": 0.02},
    "gas-4e-2": {"market.gas_price": 0.04},
    "no-chain-cost": {"market.blockchain_cost": False},
}


def flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


def test_every_shipped_config_is_named_here() -> None:
    assert sorted(p.stem for p in CONFIGS.glob("*.toml")) == sorted(PROMISES)
    assert not [p for p in CONFIGS.iterdir() if p.suffix != ".toml"]


@pytest.mark.parametrize("name", sorted(PROMISES))
def test_config_loads_with_its_mechanism_and_changes_only_what_its_name_says(name: str) -> None:
    config = MarketConfig.load(CONFIGS / f"{name}.toml")
    model = config.model_path()
    assert model is not None and model.is_file()
    assert model.resolve() == ROOT / "results" / "ranet-exact" / f"tbcim-{config.servers}.pt"
    loaded = load_mechanism(config.terms.mechanism, model, config.servers)
    assert loaded.setting.n_servers == config.servers
    assert loaded.name == "ranet-exact" and loaded.model_sha256 is not None
    values = flat(config.to_dict())
    defaults = flat(MarketConfig.load(DEFAULT).to_dict())
    assert values.keys() == defaults.keys()
    differ = {k: v for k, v in values.items() if v != defaults[k]}
    promised = PROMISES[name]
    # a promise may coincide with the default (es-5, gas-2e-2): it must hold all the same
    assert {k: values[k] for k in promised} == promised
    assert differ.keys() <= promised.keys()


@pytest.mark.parametrize("name", sorted(PROMISES))
def test_config_can_draw_its_market(name: str) -> None:
    """Past validation, the run draws the candidate EDs and partitions the data over them: that
    must succeed too (it does not for 10 ESs at fl.min_samples = 10)."""
    config = MarketConfig.load(CONFIGS / f"{name}.toml")
    fl = config.training.run.fl
    counts = eds_per_server(
        np.random.default_rng(derive_seed(CANDIDATES, fl.seed)),
        config.servers,
        config.training.min_eds,
        config.training.max_eds,
    )
    assert all(3 <= c <= 10 for c in counts) and len(counts) == config.servers
    task = build_task(fl, n_eds=int(sum(counts)))
    sizes = np.asarray(task.data_sizes)
    assert len(sizes) == sum(counts) and sizes.min() >= fl.min_samples


def test_ten_ess_need_fewer_images_per_ed_than_the_default() -> None:
    """The reason es-10 sets fl.min_samples = 5: at 10 the partition gives up, naming the key."""
    raw = tomllib.loads((CONFIGS / "es-10.toml").read_text())
    raw["fl"]["min_samples"] = 10
    config = MarketConfig.from_dict(raw)
    fl = config.training.run.fl
    counts = eds_per_server(np.random.default_rng(derive_seed(CANDIDATES, fl.seed)), 10, 3, 10)
    with pytest.raises(ConfigError) as err:
        build_task(fl, n_eds=int(sum(counts)))
    assert err.value.field == "fl.min_samples"


# ---------------------------------------------------------------------------- bad configs
#: (table, key, value, the dotted key the error must name)
BAD: list[tuple[str, str, Any, str]] = [
    ("market", "reward_units", 1.0, "market.reward_units"),  # unknown key
    ("market", "tasks", "two", "market.tasks"),  # wrong type
    ("market", "tasks", True, "market.tasks"),  # a bool is no count
    ("market", "blockchain_cost", "no", "market.blockchain_cost"),
    ("market", "tasks", 0, "market.tasks"),
    ("market", "gas_price", -0.01, "market.gas_price"),
    ("market", "reward", 0.0, "market.reward"),
    ("market", "target_accuracy", 1.5, "market.target_accuracy"),
    ("market", "mechanism", "nope", "market.mechanism"),
    ("market", "model", "results/ranet-exact/nope.pt", "market.model"),
    ("fl", "dataset", "nope", "fl.dataset"),
    ("fl", "attack", "nope", "fl.attack"),
    ("chain", "servers", 4, "chain.servers"),  # with the tbcim-5 model (below)
    ("selection", "strategy", "greedy", "selection.strategy"),
    ("auction", "seed", 1, "auction"),  # unknown table
]
IDS = [f"{table}.{key}={value!r}" for table, key, value, _ in BAD]


def bad_raw(table: str, key: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(tomllib.loads(DEFAULT.read_text()))
    raw.setdefault(table, {})[key] = value
    if (table, key) == ("chain", "servers"):
        raw["market"]["model"] = "results/ranet-exact/tbcim-5.pt"
    return raw


def validate(config: MarketConfig) -> None:
    """What `tbcim market run` checks before any work: the config, then the mechanism."""
    load_mechanism(config.terms.mechanism, config.model_path(), config.servers)


def test_written_default_round_trips(tmp_path: Path) -> None:
    """The TOML writer of these tests writes the default config faithfully."""
    raw = tomllib.loads(DEFAULT.read_text())
    again = MarketConfig.load(write_toml(tmp_path / "default.toml", raw))
    assert again == MarketConfig.load(DEFAULT)


@pytest.mark.parametrize(("table", "key", "value", "field"), BAD, ids=IDS)
def test_loader_names_the_bad_key(table: str, key: str, value: Any, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(MarketConfig.from_dict(bad_raw(table, key, value)))
    assert err.value.field == field


@pytest.mark.parametrize(("table", "key", "value", "field"), BAD, ids=IDS)
def test_cli_refuses_the_bad_config_before_any_work(
    table: str, key: str, value: Any, field: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = write_toml(tmp_path / "bad.toml", bad_raw(table, key, value))
    out = tmp_path / "run"
    status = main(["market", "run", "--config", str(config), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    assert not out.exists()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"tbcim market: error: {field}: ")
    assert captured.out == ""


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--config", "{missing}", "--out", "{out}"], "no such file"),
        (["--config", "{wrong_suffix}", "--out", "{out}"], "use a .toml or .json file"),
        (["--config", "{default}"], "--out"),
    ],
    ids=["missing-file", "wrong-suffix", "no-out"],
)
def test_cli_refuses_a_missing_file_or_folder(
    argv: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    names = {
        "missing": str(tmp_path / "nope.toml"),
        "wrong_suffix": str(write_toml(tmp_path / "market.yaml", {"market": {}})),
        "default": str(DEFAULT),
        "out": str(tmp_path / "run"),
    }
    status = main(["market", "run", *(a.format(**names) for a in argv)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and problem in err[0]
    assert not (tmp_path / "run").exists()
