"""The scripts behind docs' numbers (issue 11 item 3): scripts/pricing_gas_table.py and
scripts/matching_deviations.py, on small markets against independent recomputations."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tbcim.lower.pricing import price_market
from tbcim.lower.scenario import ScenarioConfig, draw_eds, draw_reference

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gas() -> ModuleType:
    return load("pricing_gas_table")


@pytest.fixture(scope="module")
def dev() -> ModuleType:
    return load("matching_deviations")


def test_gas_table_rows_match_a_per_es_recount(gas: ModuleType) -> None:
    """priced-out share = selected EDs with r_i > p_t* over selected EDs, counted ES by ES;
    idle ESs counted by a loop; π_s = U_d − Σ V − c^b (33) holds for the means."""
    prices = (1e-9, 2e-2, 8e-2)
    rows = gas.gas_table(60, 3, prices)
    config = ScenarioConfig()
    for row, gas_price in zip(rows, prices, strict=True):
        rng = np.random.default_rng(3)
        eds = draw_eds(rng, draw_reference(rng, config, 60), config)
        market = ScenarioConfig(market=type(config.market)(gas_price=gas_price))
        priced = price_market(eds, market)
        sol, selected = priced.solution, priced.selected
        out = sum(
            int(np.sum(selected[s] & (sol.reservation[s] > sol.price[s])))
            for s in range(60)
            if sol.n_workers[s] > 0
        ) + sum(int(selected[s].sum()) for s in range(60) if sol.n_workers[s] == 0)
        assert row["priced_out_share"] == pytest.approx(out / selected.sum())
        assert row["idle_es_share"] == pytest.approx(sum(n == 0 for n in sol.n_workers) / 60)
        assert row["profit"] == pytest.approx(
            row["utility"] - row["payments"] - row["blockchain_cost"], abs=1e-12
        )
    assert len({r["selected_per_es"] for r in rows}) == 1
    workers = [r["workers_per_es"] for r in rows]
    assert workers == sorted(workers, reverse=True)


def test_gas_table_main_writes_json_and_rejects_bad_flags(gas: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    assert gas.main(["--json", str(out), "--servers", "40", "--gas-prices", "1e-2,4e-2"]) == 0
    report = json.loads(out.read_text())
    assert [r["gas_price"] for r in report["rows"]] == [1e-2, 4e-2]
    assert report["servers"] == 40 and report["command"].startswith("python scripts/")
    with pytest.raises(SystemExit):
        gas.main(["--json", str(out), "--servers", "0"])
    with pytest.raises(SystemExit):
        gas.main(["--json", str(out), "--gas-prices", "-1"])
