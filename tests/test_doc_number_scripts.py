"""The scripts behind docs' numbers (issue 11 item 3): scripts/pricing_gas_table.py and
scripts/matching_deviations.py, on small markets against independent recomputations."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tbcim.lower.pricing import price_market
from tbcim.lower.scenario import ScenarioConfig, draw_eds, draw_reference
from tbcim.matching.model import MatchingMarket
from tbcim.matching.scenario import generate
from tbcim.matching.subopt import subopt

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


def toy_market(data_bid: float = 2.0, uav_bid: float = 2.0) -> MatchingMarket:
    """One buyer (v = 10), one pair: docs/matching.md §4.1's toy."""
    return MatchingMarket(np.array([10.0]), np.array([[data_bid]]), np.array([[[uav_bid]]]))


def test_proportional_split_gain_is_the_closed_form_on_the_toy(dev: ModuleType) -> None:
    """No competition: P = v = 10 for Subopt and Opt while J = 4 + s ≤ 10, so the data-seller's
    utility at shift s is 10·(2 + s)/(4 + s) − 2 (3 when truthful); the measured gain is its
    maximum over the script's grid, and the truthful splits gain nothing."""
    shifts = dev.seller_shifts(2.0, 10.0)
    winning = shifts[4.0 + shifts <= 10.0]
    expected = float(np.max(10.0 * (2.0 + winning) / (4.0 + winning) - 2.0)) - 3.0
    records = dev.seller_records(toy_market(), dev.SELLER_MECHANISMS, single=False)
    records += dev.seller_records(toy_market(), dev.OPT_SELLER_MECHANISMS, single=False)
    gains = {(r["variant"], r["seller"]): r["gain"] for r in records}
    for mech in ("subopt_proportional", "opt_proportional"):
        assert gains[(f"{mech}/as_drawn", "data")] == pytest.approx(expected)
    for mech in ("subopt_critical_split", "opt_vcg_seller"):
        assert max(gains[(f"{mech}/as_drawn", k)] for k in ("data", "uav")) <= 1e-9


def test_paper_rule_overbid_gain_and_none_under_the_critical_payment(dev: ModuleType) -> None:
    """docs/matching.md §3.2's overbid: (0,0,0) truthfully earns 1 under (25); any joint bid in
    (5, 10] passes the blocked pair (0,1,1), still wins and is paid v = 10: utility 6, gain 5.
    The critical payment already pays 10, so there is nothing to gain."""
    uav = np.full((2, 2, 3), 100.0)
    for triple, joint in {(1, 1, 2): 3.0, (0, 0, 0): 4.0, (0, 1, 1): 5.0}.items():
        uav[triple] = joint - 1.0
    market = MatchingMarket(np.array([10.0, 10.0]), np.ones((2, 2)), uav)
    records = dev.pair_records(market, [(0, 0, 0)], winners=1)
    gains = {r["variant"]: r["gain"] for r in records}
    assert gains["subopt_paper/as_drawn"] == pytest.approx(5.0)
    assert gains["subopt_paper/single_minded"] == pytest.approx(5.0)
    assert gains["subopt_critical/as_drawn"] == pytest.approx(0.0, abs=1e-9)
    assert all(r["winner"] for r in records)


def test_summarise_counts_gainers_above_the_tolerance(dev: ModuleType) -> None:
    records = [{"variant": "a", "gain": g} for g in (0.0, 1e-12, 2.0, 4.0, 3.0)]
    records.append({"variant": "b", "gain": -1.0})
    summary = dev.summarise(records)
    assert summary["a"] == {
        "tested": 5,
        "gained": 3,
        "share": 0.6,
        "max_gain": 4.0,
        "median_gain_of_gainers": 3.0,
    }
    assert summary["b"]["gained"] == 0 and summary["b"]["max_gain"] == 0.0


def test_measure_tests_every_winner_and_one_loser_per_market(dev: ModuleType) -> None:
    result = dev.measure((2, 2, 2), markets=2, opt_markets=0, seed=5)
    rng = np.random.default_rng(5)
    winners = [len(subopt(generate(2, 2, 2, rng)).matching.triples) for _ in range(2)]
    summary = result["pairs_summary_all"]
    assert set(summary) == {f"{m}/{v}" for m in dev.PAIR_MECHANISMS for v in dev.VARIANTS}
    assert all(s["tested"] == sum(winners) + 2 for s in summary.values())
    sellers = result["sellers_summary"]
    assert all(s["tested"] == 2 * sum(winners) for s in sellers.values())
    assert not any(v.startswith("opt") for v in sellers)


def test_matching_main_rejects_bad_flags(dev: ModuleType, tmp_path: Path) -> None:
    out = str(tmp_path / "d.json")
    for bad in (["--size", "3x3"], ["--markets", "0"], ["--markets", "2", "--opt-markets", "3"]):
        with pytest.raises(SystemExit):
            dev.main([*bad, "--json", out])


def test_pair_grid_spans_zero_to_v_and_comes_within_1e3_of_the_truth(dev: ModuleType) -> None:
    grid = dev.pair_grid(3.0, 80.0)
    assert grid[0] == 0.0 and grid[-1] == 80.0 and np.all(np.diff(grid) > 0)
    assert np.any(np.isclose(grid, 3.001)) and np.any(np.isclose(grid, 2.999))
    assert np.all(dev.pair_grid(90.0, 80.0) <= 80.0)


def test_matching_main_writes_summaries_and_every_gainer_to_csv(
    dev: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "d.json"
    argv = ["--size", "2x2x2", "--markets", "2", "--opt-markets", "0", "--seed", "5"]
    assert dev.main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["command"] == "python scripts/matching_deviations.py " + " ".join(
        [*argv, "--json", str(out)]
    )
    assert "pairs" not in report and "sellers" not in report
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    for kind, summary in (("pair", "pairs_summary_all"), ("seller", "sellers_summary")):
        for variant, s in report[summary].items():
            mine = [r for r in rows if r["deviation"] == kind and r["variant"] == variant]
            assert len(mine) == s["gained"]
            assert all(float(r["gain"]) > dev.GAIN_TOL for r in mine)
