"""``tbcim market run --engine flower`` (issue 13): the market's training on the Flower engine.

The oracle is the local engine: the same config and seed on anvil give the same g_e, winners,
payments, per-round accepted sets and global-model hashes. The local run gives its EDs the
Flower EDs' own keys (``run_market(ed_keys=True)``): an ED's address enters its commit-reveal
commitments, so g_e (32) and the bids move by a few gas with it, and only the engine may differ
here. One Flower run, through the CLI (which starts its own anvil), serves every test that
needs one; Ray starts once per test session (``ray_runtime``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chain_node.anvil import running_anvil
from tbcim.cli import main
from tbcim.errors import ConfigError
from tbcim.fl.flower.engine import FlowerOptions, flower_devices
from tbcim.fl.flower.spec import ANVIL_BALANCE_ETHER
from tbcim.market.config import MarketConfig
from tbcim.market.folder import RunFolder
from tbcim.market.run import run_market

from .config_files import write_toml

# xdist_group: every Flower test on one test worker, so Ray starts once (tests/conftest.py).
pytestmark = [pytest.mark.anvil, pytest.mark.xdist_group("ray")]

# The smallest market that trains and pays: 3 ESs (ranet-exact tbcim-3) with 2-3 candidate EDs
# each, one task of two rounds, a low target so that it pays and the settlement has claims.
RAW: dict[str, Any] = {
    "market": {"tasks": 1, "target_accuracy": 0.05, "calibration_eds": 2},
    "fl": {"lr": 0.2, "local_epochs": 1, "global_rounds": 2, "seed": 4},
    "chain": {"servers": 3},
    "selection": {"min_eds": 2, "max_eds": 3},
}
ROUND_KEYS = ("model_hash", "accepted", "rejected", "participants", "failed_servers", "gas")


@pytest.fixture(scope="module")
def runs(ray_runtime: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Flower engine through the CLI, and the local engine with the same ED keys."""
    out = tmp_path_factory.mktemp("market-flower")
    config_file = write_toml(out / "small.toml", RAW)
    cli = ["market", "run", "--engine", "flower", "--workers", "1", "--config", str(config_file)]
    assert main([*cli, "--out", str(out / "flower")]) == 0
    config = MarketConfig.from_dict(RAW)
    with running_anvil("--balance", str(ANVIL_BALANCE_ETHER), accounts=1 + 3) as url:
        folder = RunFolder.create(out / "local", config.to_dict(), config.seed, None)
        run_market(config, folder, url, log=lambda line: None, ed_keys=True)
    return {"flower": out / "flower", "local": out / "local"}


def summary(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "summary.json").read_text()))


def test_the_flower_engine_gives_the_local_engines_market(runs: dict[str, Path]) -> None:
    local, flower = summary(runs["local"]), summary(runs["flower"])
    for key in ("winners", "payments", "ed_payments", "final_accuracy", "stakes", "candidates"):
        assert flower[key] == local[key], key
    assert flower["device_accounts"] == local["device_accounts"]
    (a,), (b,) = local["tasks"], flower["tasks"]
    assert b["status"] == a["status"] == "completed"
    assert b["g_e"] == a["g_e"] and b["model_hash"] == a["model_hash"]
    assert [x["bid_wei"] for x in b["bids"]] == [x["bid_wei"] for x in a["bids"]]
    assert len(a["rounds"]) == 2 and len({r["model_hash"] for r in a["rounds"]}) == 2
    for ra, rb in zip(a["rounds"], b["rounds"], strict=True):
        assert {k: rb[k] for k in ROUND_KEYS} == {k: ra[k] for k in ROUND_KEYS}
    assert a["winners"] and a["ed_payments"] and all(int(w) > 0 for w in a["payments"].values())
    assert flower["reconciled"] is local["reconciled"] is True


def test_the_folder_records_the_engine_and_the_eds_sign_with_their_own_keys(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = runs["flower"]
    s = summary(folder)
    assert (s["engine"], s["workers"], s["ed_keys"]) == ("flower", 1, True)
    assert (summary(runs["local"])["engine"], summary(runs["local"])["workers"]) == ("local", None)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["engine"] == {"name": "flower", "workers": 1}
    eds = flower_devices(4, sum(s["candidates"]))
    assert s["device_accounts"] == eds
    entries = json.loads((folder / "chain" / "transactions.json").read_text())["entries"]
    by_function: dict[str, set[str]] = {}
    for e in entries:
        by_function.setdefault(e["function"], set()).add(e["sender"])
    # the ClientApps' training transactions, and the claims this process signed for the EDs
    assert by_function["submit"] and by_function["submit"] <= set(eds)
    assert by_function["claimDevicePay"] and by_function["claimDevicePay"] <= set(eds)
    assert main(["market", "verify", str(folder)]) == 0
    assert "verified" in capsys.readouterr().out


def test_bad_engine_flags_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    config_file = write_toml(tmp_path / "small.toml", RAW)
    run = ["market", "run", "--config", str(config_file), "--out", str(out)]
    assert main([*run, "--engine", "flower", "--workers", "0"]) == 2
    assert "--workers: must be a positive integer, got 0" in capsys.readouterr().err
    assert main([*run, "--workers", "2"]) == 2
    assert "--workers: sets the Flower engine's Ray CPUs; add --engine flower" in (
        capsys.readouterr().err
    )
    copy = json.loads(json.dumps(RAW))
    copy["fl"]["attack"] = "copy"
    copy_file = write_toml(tmp_path / "copy.toml", copy)
    args = ["market", "run", "--engine", "flower", "--config", str(copy_file), "--out", str(out)]
    assert main(args) == 2
    assert "fl.attack: the copy attack" in capsys.readouterr().err
    assert not out.exists()
    # the FL command shares the flags
    assert main(["fl", "run", "--workers", "2", "--out", str(out)]) == 2
    assert "--workers: sets the Flower engine's" in capsys.readouterr().err
    assert not out.exists()
    # the API: the Flower engine, or the EDs' own keys, on the embedded chain
    config = MarketConfig.from_dict(RAW)
    folder = RunFolder.create(out, config.to_dict(), config.seed, None)
    for options in ({"flower": FlowerOptions(workers=1)}, {"ed_keys": True}):
        with pytest.raises(ConfigError, match="--rpc-url: the Flower engine's EDs sign"):
            run_market(config, folder, None, log=lambda line: None, **options)
    assert json.loads((out / "progress.json").read_text())["steps"] == []


def test_a_resume_keeps_the_recorded_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resume runs on the engine its folder recorded; only --workers may change. The run
    itself is stubbed: the equivalence above is what a replay relies on."""
    import tbcim.market.report
    import tbcim.market.run

    config = MarketConfig.from_dict(RAW)
    flower = tmp_path / "flower"
    RunFolder.create(flower, config.to_dict(), config.seed, None, {"name": "flower", "workers": 1})
    local = tmp_path / "local"
    RunFolder.create(local, config.to_dict(), config.seed, None)
    before = (flower / "progress.json").read_bytes()
    assert main(["market", "run", "--resume", str(flower), "--engine", "local"]) == 2
    assert "--engine: the run in" in capsys.readouterr().err
    assert main(["market", "run", "--resume", str(flower), "--workers", "0"]) == 2
    assert "--workers: must be a positive integer" in capsys.readouterr().err
    assert main(["market", "run", "--resume", str(local), "--workers", "2"]) == 2
    assert "--workers: sets the Flower engine's" in capsys.readouterr().err
    assert (flower / "progress.json").read_bytes() == before  # nothing touched

    calls: list[tuple[str | None, FlowerOptions | None]] = []

    def fake_run(*args: Any, flower: FlowerOptions | None = None, **_: Any) -> dict[str, Any]:
        calls.append((args[2], flower))
        return {"reconciled": True}

    monkeypatch.setattr(tbcim.market.run, "run_market", fake_run)
    monkeypatch.setattr(tbcim.market.report, "summary_table", lambda s: "")
    assert main(["market", "run", "--resume", str(flower), "--workers", "2"]) == 0
    assert main(["market", "run", "--resume", str(local)]) == 0
    (url, options), (local_url, local_options) = calls
    assert url is not None and url.startswith("http://127.0.0.1:")  # an anvil it started
    assert options is not None and options.workers == 2
    assert (local_url, local_options) == (None, None)  # the embedded chain, as recorded
    saved = json.loads((flower / "config.json").read_text())
    assert saved["engine"] == {"name": "flower", "workers": 2}
    assert "on the flower engine" in capsys.readouterr().out
