"""`tbcim pricing` end to end through the CLI dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tbcim.cli import main

from .test_pricing_config import EXPLICIT_TOML


def _run(tmp_path: Path, *extra: str, name: str = "out.json") -> tuple[int, dict]:
    out = tmp_path / name
    code = main(["pricing", *extra, "--json", str(out)])
    return code, json.loads(out.read_text()) if out.exists() else {}


def test_default_report_has_every_field_and_prices_out_some(tmp_path, capsys) -> None:
    code, report = _run(tmp_path, "--seed", "3")
    assert code == 0
    assert report["g_e_source"] == "default" and report["g_e"] == 7.68e4
    assert len(report["servers"]) == 5
    for server in report["servers"]:
        for key in (
            "candidates",
            "workers",
            "price",
            "profit",
            "blockchain_cost",
            "g_e",
            "g_e_source",
        ):
            assert key in server
        for worker in server["workers"]:
            assert worker["profit"] >= -1e-12
            assert {"compute", "payment", "profit"} <= set(worker)
    totals = report["totals"]
    assert 0 < totals["priced_out"] < totals["selected"] <= totals["candidates"]
    text = capsys.readouterr().out
    assert "p_t* =" in text and "priced out" in text and "c_s^b" in text


def test_png_of_the_profit_curves(tmp_path) -> None:
    png = tmp_path / "curves.png"
    code, _ = _run(tmp_path, "--png", str(png))
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_report(tmp_path) -> None:
    _, first = _run(tmp_path, "--seed", "9", name="a.json")
    _, second = _run(tmp_path, "--seed", "9", name="b.json")
    _, other = _run(tmp_path, "--seed", "10", name="c.json")
    assert first == second and first["servers"] != other["servers"]


def test_measured_g_e_from_a_gas_ledger(tmp_path) -> None:
    ledger = tmp_path / "deploy.json"
    ledger.write_text(json.dumps({"g_e": 123456.0, "other": 1}))
    code, report = _run(tmp_path, "--gas-ledger", str(ledger))
    assert code == 0 and report["g_e_source"] == "measured" and report["g_e"] == 123456.0
    server = report["servers"][0]
    expected = 3.48e-2 * 12.3456 * 2e-2 * len(server["workers"])
    assert server["blockchain_cost"] == pytest.approx(expected)


def test_explicit_market_from_toml(tmp_path) -> None:
    config = tmp_path / "market.toml"
    config.write_text(EXPLICIT_TOML)
    code, report = _run(tmp_path, "--config", str(config))
    assert code == 0 and len(report["servers"]) == 1
    assert [c["ed"] for c in report["servers"][0]["candidates"]] == [0, 1]


def test_negative_seed_is_rejected(tmp_path, capsys) -> None:
    code, report = _run(tmp_path, "--seed", "-1")
    assert code == 2 and report == {} and "seed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("write", "flag"),
    [
        (lambda p: p.write_text("[market]\ngas_price = -1\n"), "--config"),
        (lambda p: p.write_text('{"g_e": -3}'), "--gas-ledger"),
        (lambda p: None, "--gas-ledger"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, write, flag) -> None:
    path = tmp_path / ("bad.toml" if flag == "--config" else "ledger.json")
    write(path)
    code, report = _run(tmp_path, flag, str(path))
    assert code == 2 and report == {}
    assert "error" in capsys.readouterr().err
