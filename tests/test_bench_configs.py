"""The pricing, matching and chain benchmarks read their rows from configs/bench (issue 14).

Every checked-in file parses and is named by the README; unknown keys, bad values and bad flags
are errors naming the dotted key (or the flag); a flag overrides the file; ``--seeds`` reaches
the JSON, and a pooled row is the mean of the single-seed runs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tbcim.blockchain.aggregator import AggregatorConfig
from tbcim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("pricing", "matching", "chain")
#: The rows of these three benchmarks (configs/bench also holds other benchmarks' files).
CONFIGS = sorted(
    c for c in (REPO / "configs" / "bench").glob("*.toml") if c.stem.split("-")[0] in SCRIPTS
)


@cache
def bench(name: str) -> ModuleType:
    """scripts/bench_<name>.py as a module."""
    path = REPO / "scripts" / f"bench_{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def script_of(config: Path) -> str:
    """configs/bench/chain-no-commit.toml -> "chain"."""
    return config.stem.split("-")[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_bench_config_parses_and_is_named_in_the_readme() -> None:
    assert {script_of(c) for c in CONFIGS} == set(SCRIPTS)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for config in CONFIGS:
        settings, _ = bench(script_of(config)).load_config(str(config), {})
        assert settings.seeds, config
        assert f"--config configs/bench/{config.name}" in readme, config.name


def test_chain_configs_are_the_reported_rows() -> None:
    """The README's chain table and its commit-reveal-off row, as the files give them."""
    main, aggregator = bench("chain").load_config(str(REPO / "configs/bench/chain.toml"), {})
    assert (main.sizes, main.eds, main.rounds, aggregator) == ((10_000, 50_000), (10, 30), 2, {})
    off, settings = bench("chain").load_config(str(REPO / "configs/bench/chain-no-commit.toml"), {})
    assert (off.sizes, off.eds, settings) == ((10_000,), (10,), {"commit_blocks": 0})
    assert AggregatorConfig(num_params=1).commit_blocks > 0  # the default has it on


#: script -> (a file body, the dotted key it must name, extra flags) for each bad file.
BAD_FILES = [
    ("pricing", "[bench]\nrepeats = 3\n", "bench.repeats"),
    ("pricing", "[market]\nkapa = 1.0\n", "market.kapa"),
    ("pricing", "[bench]\nseeds = [1, 1]\n", "bench.seeds"),
    ("pricing", "[bench]\nnumber = 0\n", "bench.number"),
    ("pricing", "[benchmark]\nrepeat = 3\n", "benchmark"),
    ("matching", "[bench]\ninstance = 3\n", "bench.instance"),
    ("matching", "[scenario]\ndemnd = 3.0\n", "scenario.demnd"),
    ("matching", "[scenario]\ndemand = -3.0\n", "scenario.demand"),
    ("matching", "[bench]\nseeds = 'zero'\n", "bench.seeds"),
    ("chain", "[bench]\nsizez = [10]\n", "bench.sizez"),
    ("chain", "[bench]\neds = [0]\n", "bench.eds"),
    ("chain", "[aggregator]\ncommit_blokcs = 0\n", "aggregator.commit_blokcs"),
    ("chain", "[aggregator]\nnum_params = 10\n", "aggregator.num_params"),
    ("chain", "[aggregator]\nhistory_window = -1\n", "aggregator.history_window"),
]


@pytest.mark.parametrize(("script", "body", "key"), BAD_FILES)
def test_bad_config_is_rejected_naming_the_dotted_key(
    script: str, body: str, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bad.toml", body)
    with pytest.raises(ConfigError) as err:
        bench(script).load_config(str(path), {})
    assert err.value.field == key
    # The command line prints it as one line and exits 2, before any work starts.
    assert bench(script).main(["--config", str(path), "--json", str(tmp_path / "o.json")]) == 2
    assert f"bench_{script}: error: {key}:" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("script", ["pricing", "matching", "chain"])
def test_file_errors_and_bad_flags(
    script: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = bench(script)
    out = ["--json", str(tmp_path / "o.json")]
    yaml = write(tmp_path / "bench.yaml", "bench: {}\n")
    assert module.main(["--config", str(yaml), *out]) == 2
    assert "config: " in capsys.readouterr().err
    assert module.main(["--config", str(tmp_path / "none.toml"), *out]) == 2
    assert "no such file" in capsys.readouterr().err
    # A flag is checked like a key of the file, and named by its own name.
    config = str(REPO / "configs" / "bench" / f"{script}.toml")
    assert module.main(["--config", config, "--seeds", "2,2", *out]) == 2
    assert f"bench_{script}: error: seeds:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main(["--config", config, "--seeds", "one", *out])
    assert "--seeds" in capsys.readouterr().err


def test_chain_out_is_json_with_a_deprecation_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.toml")
    assert bench("chain").main(["--config", missing, "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "--out is deprecated, use --json FILE" in err
    assert "no such file" in err


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml", "[bench]\nsizes = [5]\nseeds = [1]\n[aggregator]\nclip = 2.0\n"
    )
    settings, aggregator = bench("chain").load_config(
        str(path), {"seeds": (4, 2), "sizes": None, "commit_blocks": 0}
    )
    assert (settings.sizes, settings.seeds) == ((5,), (4, 2))
    assert aggregator == {"clip": 2.0, "commit_blocks": 0}
    pricing, _ = bench("pricing").load_config(None, {"repeat": 2})
    assert (pricing.repeat, pricing.number) == (2, 100)  # no file: the class defaults


def test_pricing_seeds_reach_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = bench("pricing")
    # server_types at 20,000 ESs takes about a second a call; what the seeds do is under test.
    monkeypatch.setattr(module, "server_types", lambda rng, n: rng.random(3))
    config = write(
        tmp_path / "p.toml", "[bench]\nrepeat = 2\nnumber = 1\n[market]\nkappa = 400.0\n"
    )
    out = tmp_path / "p.json"
    assert module.main(["--config", str(config), "--json", str(out), "--seeds", "7,3"]) == 0
    report = json.loads(out.read_text())
    assert report["seeds"] == [7, 3]
    assert report["config"] == str(config)
    assert report["resolved_config"]["bench"] == {"seeds": [7, 3], "repeat": 2, "number": 1}
    assert report["resolved_config"]["scenario"]["market"]["kappa"] == 400.0
    for timing in report["timings"].values():
        assert len(timing["per_seed_median_ms"]) == 2
        assert timing["best_ms"] <= timing["median_ms"]
    # The old --seed still works, as one seed.
    assert module.main(["--config", str(config), "--json", str(out), "--seed", "5"]) == 0
    assert json.loads(out.read_text())["seeds"] == [5]


def test_matching_seeds_pool_each_seeds_markets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opt is deterministic: the pooled row's revenue is the mean of the single-seed rows'."""
    module = bench("matching")
    # Two Table II sizes and the fast methods: the seeds are under test, not the sizes.
    monkeypatch.setattr(module, "METHODS", ("Opt", "Subopt"))
    sizes = ("1/5/5", "3/5/5")
    monkeypatch.setattr(module, "PAPER_TABLE2", {k: module.PAPER_TABLE2[k] for k in sizes})
    config = write(tmp_path / "m.toml", "[bench]\ninstances = 1\ngap_instances = 2\n")

    def rows(seeds: str) -> dict[tuple[str, str], dict[str, Any]]:
        out = tmp_path / f"m{seeds}.json"
        module.main(["--config", str(config), "--json", str(out), "--seeds", seeds])
        report = json.loads(out.read_text())
        assert report["seeds"] == [int(s) for s in seeds.split(",")]
        assert report["resolved_config"]["bench"]["large_repeats"] == 5
        return {(r["size"], r["method"]): r for r in report["rows"]}

    monkeypatch.setattr(module, "generate", _small_large(module.generate))
    both, first, second = rows("3,4"), rows("3"), rows("4")
    assert {size for size, _ in both} == {*sizes, "100/100/100", "6/8/10"}
    for key, row in both.items():
        assert row["instances"] == first[key]["instances"] + second[key]["instances"]
        if key[1] == "Opt":
            mean = np.mean([first[key]["revenue"], second[key]["revenue"]])
            assert row["revenue"] == pytest.approx(mean)


def _small_large(generate: Any) -> Any:
    """``generate`` with the 100/100/100 markets shrunk to 5/5/5 (the seconds are not tested)."""

    def small(buyers: int, data_sellers: int, uav_sellers: int, *rest: Any) -> Any:
        if buyers == 100:
            buyers = data_sellers = uav_sellers = 5
        return generate(buyers, data_sellers, uav_sellers, *rest)

    return small


def test_chain_seeds_reach_the_rows(tmp_path: Path) -> None:
    """One tiny round on the embedded chain: the seed, the file's settings and the flag's."""
    config = write(
        tmp_path / "c.toml",
        "[bench]\nsizes = [64]\neds = [2]\nrounds = 1\n[aggregator]\nclip = 2.0\n",
    )
    out = tmp_path / "c.json"
    args = ["--config", str(config), "--json", str(out), "--seeds", "5", "--commit-blocks", "0"]
    assert bench("chain").main(args) == 0
    report = json.loads(out.read_text())
    assert report["seeds"] == [5]
    assert report["complete"] and report["goals"]["every_tx_within_limits"]
    assert report["resolved_config"] == {
        "bench": {"sizes": [64], "eds": [2], "rounds": 1, "seeds": [5]},
        "aggregator": {"clip": 2.0, "commit_blocks": 0},
    }
    (row,) = report["rows"]
    assert (row["seed"], row["params"], row["eds"]) == (5, 64, 2)
    assert (row["settings"]["clip"], row["settings"]["commit_blocks"]) == (2.0, 0)
