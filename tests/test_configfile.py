"""The shared config reader (tbcim.configfile), and every package's reader run through it.

Each reader path (RANet run configs, pricing configs, auction setting files) is driven through the
same failures: a bad suffix, a missing file, a parse error, a top level that is not a table, an
unknown key, a wrong type and an out-of-range value. Each must be a ConfigError naming the
dotted key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tbcim.auction.ranet.config import TrainConfig, config_from_mapping, read_config_file
from tbcim.auction.settings import load_setting_config, setting_from_dict
from tbcim.cli import main
from tbcim.configfile import (
    CONFIG_SUFFIXES,
    check_table,
    check_value,
    dataclass_from_table,
    keyed,
    read_config,
)
from tbcim.errors import ConfigError
from tbcim.lower.config import load_config


def _ranet(path: Path) -> object:
    """The `tbcim auction train --config` path: the file, then each table by its own parser."""
    setting, train = read_config_file(path)
    with keyed("setting"):
        setting_from_dict({"base": "single-3", **setting})
    with keyed("train"):
        return config_from_mapping(train, TrainConfig())


#: reader -> (a valid file body in TOML, (body, dotted key) for each bad value), in TOML.
READERS: dict[str, tuple[Callable[[Path], object], str, list[tuple[str, str]]]] = {
    "ranet": (
        _ranet,
        "[train]\nepochs = 3\n[setting]\nvalue = 2.0\n",
        [
            ("[train]\nhidden_widht = 3\n", "train.hidden_widht"),
            ("[train]\nepochs = 2.5\n", "train.epochs"),
            ("[train]\nlr = -1.0\n", "train.lr"),
            ("[setting]\nvalue = 'lots'\n", "setting.value"),
            ("[setting]\nbid_high = -1.0\n", "setting.bid_high"),
            ("[optimiser]\nlr = 1\n", "optimiser"),
        ],
    ),
    "pricing": (
        load_config,
        "[market]\nkappa = 500.0\n",
        [
            ("[market]\nkapa = 1.0\n", "market.kapa"),
            ("[market]\nkappa = 'big'\n", "market.kappa"),
            ("[market]\nkappa = -1.0\n", "market.kappa"),
            ("[scenario]\nn_servers = 2.5\n", "scenario.n_servers"),
            ("[scenario]\ngamma = [2e-7, 1e-7]\n", "scenario.gamma"),
        ],
    ),
    "setting": (
        load_setting_config,
        "base = 'tbcim-3'\npool_size = 300\n[quality]\na1 = 0.8\n",
        [
            ("base = 'tbcim-3'\n[quality]\na9 = 1.0\n", "quality.a9"),
            ("base = 'tbcim-3'\n[quality]\na1 = 'x'\n", "quality.a1"),
            ("base = 'tbcim-3'\n[quality]\na1 = -1.0\n", "quality.a1"),
            ("base = 'tbcim-3'\npool_seed = 'x'\n", "pool_seed"),
            ("base = 'tbcim-3'\nbid_quantile = 0.1\n", "bid_quantile"),
        ],
    ),
}


def _error(read: Callable[[Path], object], path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        read(path)
    return err.value


@pytest.mark.parametrize("reader", sorted(READERS))
def test_reader_file_errors(reader: str, tmp_path: Path) -> None:
    read, good, _ = READERS[reader]
    read(_write(tmp_path / "good.toml", good))
    cases = {
        "run.yaml": ("a: 1\n", "use a .toml or .json"),
        "run": ("a = 1\n", "use a .toml or .json"),
        "missing.toml": (None, "no such file"),
        "broken.toml": ("[train\n", "cannot parse"),
        "broken.json": ("{", "cannot parse"),
        "list.json": ("[1, 2]", "top level must be a table"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name if text is None else _write(tmp_path / name, text)
        err = _error(read, path)
        assert err.field == "config" and message in err.problem, (name, err)


@pytest.mark.parametrize(
    ("reader", "case"),
    [(r, i) for r, (_, _, bad) in sorted(READERS.items()) for i in range(len(bad))],
)
def test_reader_names_the_dotted_key(reader: str, case: int, tmp_path: Path) -> None:
    read, _, bad = READERS[reader]
    body, key = bad[case]
    assert _error(read, _write(tmp_path / "bad.toml", body)).field == key
    # The same table as JSON is read the same way.
    as_json = _write(tmp_path / "bad.json", json.dumps(_toml(body)))
    assert _error(read, as_json).field == key


def test_json_and_toml_read_alike(tmp_path: Path) -> None:
    for read, good, _ in READERS.values():
        from_toml = read(_write(tmp_path / "a.toml", good))
        from_json = read(_write(tmp_path / "a.json", json.dumps(_toml(good))))
        assert repr(from_toml) == repr(from_json)


# ----- the reader's parts ------------------------------------------------------------------


@dataclass(frozen=True)
class _Example:
    count: int = 1
    rate: float = 0.5
    label: str = "x"
    flag: bool = False
    cap: float | None = None
    pair: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError("count", "must be positive")


def test_dataclass_from_table_checks_keys_types_and_ranges() -> None:
    built = dataclass_from_table(_Example, {"count": 2, "rate": 1, "pair": [1, 2]}, "ex")
    assert built == _Example(count=2, rate=1.0, pair=(1.0, 2.0))
    assert isinstance(built.rate, float)
    base = _Example(label="kept")
    assert dataclass_from_table(_Example, None, "ex", base) == base
    assert dataclass_from_table(_Example, {"cap": None}, "ex").cap is None
    for raw, field, problem in [
        ({"cont": 1}, "a.ex.cont", "unknown key"),
        ({"count": 1.5}, "a.ex.count", "integer"),
        ({"count": True}, "a.ex.count", "integer"),
        ({"rate": "fast"}, "a.ex.rate", "number"),
        ({"label": 3}, "a.ex.label", "string"),
        ({"flag": 1}, "a.ex.flag", "true or false"),
        ({"cap": "none"}, "a.ex.cap", "number"),
        ({"pair": [1, "b"]}, "a.ex.pair", "list of numbers"),
        ({"count": 0}, "a.ex.count", "must be positive"),
        (3, "a.ex", "table"),
    ]:
        with pytest.raises(ConfigError) as err, keyed("a"):
            dataclass_from_table(_Example, raw, "ex")
        assert err.value.field == field and problem in err.value.problem, raw


def test_dataclass_from_table_reports_a_field_it_cannot_build() -> None:
    """A pre-built field the dataclass does not have is reported on the table, not raised raw."""
    with pytest.raises(ConfigError, match="unexpected keyword") as err:
        dataclass_from_table(_Example, {}, "ex", colour="red")
    assert err.value.field == "ex"
    # A field of a type the reader cannot check is not settable from the table.
    with pytest.raises(ConfigError, match="unknown key") as err:
        dataclass_from_table(_Nested, {"inner": {}}, "n")
    assert err.value.field == "n.inner"
    assert dataclass_from_table(_Nested, {}, "n", inner=_Example(count=3)).inner.count == 3


@dataclass(frozen=True)
class _Nested:
    inner: _Example = _Example()
    size: int = 1


def test_keyed_leaves_fields_already_under_the_table() -> None:
    for inner, outer in [
        ("a1", "quality.a1"),
        ("quality.a1", "quality.a1"),
        ("quality", "quality"),
    ]:
        with pytest.raises(ConfigError) as err, keyed("quality"):
            raise ConfigError(inner, "bad")
        assert err.value.field == outer
    with pytest.raises(ConfigError) as err, keyed(""):
        raise ConfigError("a1", "bad")
    assert err.value.field == "a1"


def test_check_table_and_values() -> None:
    assert check_table(None, "t", ("a",)) == {}
    assert check_table({"b": 1}, "t") == {"b": 1}
    with pytest.raises(ConfigError, match="unknown key") as err:
        check_table({"b": 1}, "", ("a",))
    assert err.value.field == "b"
    with pytest.raises(ConfigError) as err:
        check_table([1], "", ("a",))
    assert err.value.field == "config"
    with pytest.raises(TypeError, match="unsupported"):
        check_value({}, dict, "x")
    with pytest.raises(TypeError, match="unsupported"):
        check_value(1, int | str, "x")
    assert CONFIG_SUFFIXES == (".toml", ".json")


def test_read_config_names_its_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        read_config(tmp_path / "x.ini", field="pricing")
    assert err.value.field == "pricing"
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="no such file"):
        read_config(folder)
    latin = _write(tmp_path / "latin.toml", "")
    latin.write_bytes(b"a = '\xff'\n")
    with pytest.raises(ConfigError, match="cannot read"):
        read_config(latin)


# ----- every CLI config error names the dotted key -----------------------------------------


TRAIN = ["auction", "train", "--setting"]


@pytest.mark.parametrize(
    ("argv", "body", "message"),
    [
        (["pricing"], "[market]\nkapa = 1.0\n", "market.kapa: unknown key"),
        (["pricing"], "[quality]\na1 = 'x'\n", "quality.a1: must be a number"),
        ([*TRAIN, "single-3"], "[train]\nhidden_widht = 3\n", "train.hidden_widht: unknown key"),
        ([*TRAIN, "single-3"], "[train]\nlr = -1.0\n", "train.lr: must be a positive"),
        ([*TRAIN, "tbcim-3"], "[setting.quality]\na9 = 1\n", "setting.quality.a9: unknown key"),
        ([*TRAIN, "single-3"], "[setting]\nvalue = 'x'\n", "setting.value: must be a number"),
        ([*TRAIN, "single-3"], "[setting]\nvalue = -1.0\n", "setting.value: must be positive"),
    ],
)
def test_cli_config_errors_name_the_dotted_key(
    argv: list[str], body: str, message: str, tmp_path: Path, capsys: Any
) -> None:
    config = _write(tmp_path / "bad.toml", body)
    out = tmp_path / "never"
    tail = ["--json", str(out)] if argv[0] == "pricing" else ["--model", str(out)]
    assert main([*argv, "--config", str(config), *tail]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not out.exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _toml(body: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(body)
