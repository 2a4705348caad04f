"""The market end to end (issue 10): a small market on the embedded chain and on anvil, each
reconciled to the wei; ``market verify`` against a tampered outcome; resume after a killed run;
a chain that stops answering; an escrow smaller than the auction's payments."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chain_node.anvil import anvil_process, running_anvil
from chain_node.errors import ChainError
from tbcim.auction.mechanism import realise
from tbcim.blockchain.fl_market import outcome_seed
from tbcim.cli import main
from tbcim.market import run as market_run
from tbcim.market.config import MarketConfig
from tbcim.market.folder import RunFolder
from tbcim.market.outcome import Award
from tbcim.market.run import run_market
from tbcim.results import write_json

from .config_files import write_toml

TBCIM = str(Path(sys.executable).parent / "tbcim")
# 3 ESs (ranet-exact tbcim-3) with 2-3 candidate EDs, two tasks of two rounds, a low target so
# that the tasks pay and the settlement has something to reconcile.
SMALL: dict[str, Any] = {
    "market": {"tasks": 2, "target_accuracy": 0.05, "calibration_eds": 2},
    "fl": {"lr": 0.2, "local_epochs": 1, "global_rounds": 2, "seed": 4},
    "chain": {"servers": 3},
    "selection": {"min_eds": 2, "max_eds": 3},
}


def small(rounds: int = 2, **market: Any) -> MarketConfig:
    raw = json.loads(json.dumps(SMALL))
    raw["market"].update(market)
    raw["fl"]["global_rounds"] = rounds
    return MarketConfig.from_dict(raw)


def run_into(folder: Path, config: MarketConfig, rpc_url: str | None = None) -> dict[str, Any]:
    run = RunFolder.create(folder, config.to_dict(), config.seed, None)
    return run_market(config, run, rpc_url, log=lambda line: None)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("market") / "run"
    return folder, run_into(folder, small())


def test_summary_has_the_issue_keys_and_reconciles(embedded: tuple[Path, dict[str, Any]]) -> None:
    folder, summary = embedded
    for key in (
        "winners",
        "payments",
        "ed_payments",
        "final_accuracy",
        "reconciled",
        "gas_by_function",
        "seconds_by_phase",
        "mechanism",
    ):
        assert key in summary
    assert summary["mechanism"] == "ranet-exact"
    assert summary["reconciled"] is True
    tasks = summary["tasks"]
    assert len(tasks) == 2
    for t in tasks:
        assert t["status"] == "completed", t["note"]
        assert all(t["reconciliation"].values())
        # the escrow splits exactly: requester refund + ES credit + ED pay = reward
        paid = sum(int(v) for v in t["payments"].values())
        assert 0 < paid <= small().terms.reward_wei
        # each ES's EDs get at most its payment, and exactly floor(V_i * 1e18)
        by_es = {b["server"]: b for b in t["bids"]}
        for s, wei in t["payments"].items():
            workers = by_es[int(s)]["workers"]
            assert sum(int(t["ed_payments"][str(ed)]) for ed in workers) <= int(wei)
        assert len(t["rounds"]) == 2
        for name in ("pricing", "publish", "bidding", "auction", "accept", "training"):
            assert t["seconds_by_phase"][name] >= 0
        assert {"FLMarket.commitBid", "FLMarket.revealBid", "FLMarket.claimDevicePay"} <= set(
            t["gas_by_function"]
        )
    for name in (
        "summary.json",
        "tasks.csv",
        "bids.csv",
        "rounds.csv",
        "ed_payments.csv",
        "accuracy.png",
        "payments.png",
        "config.json",
        "progress.json",
        "chain/transactions.json",
        "chain/market_logs.json",
    ):
        assert (folder / name).is_file(), name


def test_consecutive_tasks_have_their_own_reference_and_stakes_follow_revenue(
    embedded: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = embedded
    first, second = summary["tasks"]
    assert [b["emd"] for b in first["bids"]] != [b["emd"] for b in second["bids"]]
    revenue = np.zeros(summary["servers"])
    for t in summary["tasks"]:
        for s, wei in t["payments"].items():
            revenue[int(s)] += int(wei)
    np.testing.assert_allclose(summary["stakes"], revenue / revenue.sum(), rtol=1e-12)


def test_the_award_is_realise_on_the_chain_seed(embedded: tuple[Path, dict[str, Any]]) -> None:
    """Oracle: the recorded winners are the Bernoulli(z) draws of numpy's generator seeded by
    the XOR of keccak(bidder, salt), and each is paid p/z floored to whole gwei."""
    folder, summary = embedded
    from tbcim.market.verify import _market_events

    events = _market_events(folder, None)
    for t in summary["tasks"]:
        salts = [
            (e.args.bidder, bytes(e.args.salt))
            for e in events
            if e.event == "BidRevealed" and e.args.taskId == t["task_id"]
        ]
        (final,) = [
            e for e in events if e.event == "AwardFinalized" and e.args.taskId == t["task_id"]
        ]
        seed = outcome_seed(salts)
        assert seed == final.args.seed
        z = np.array([t["award"]["allocation"]])
        p = np.array([t["award"]["expected_payment"]])
        won, pay = realise(z, p, True, np.random.default_rng(seed))
        bidders = t["award"]["bidders"]
        expected = [
            (bidders[s], int(np.floor(pay[0, s] * 10**9)) * 10**9)
            for s in range(len(bidders))
            if won[0, s] and pay[0, s] > 0
        ]
        assert list(zip(final.args.winners, final.args.payments, strict=True)) == expected


def test_verify_matches_and_catches_a_tampered_summary(
    embedded: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = embedded
    assert main(["market", "verify", str(folder)]) == 0
    assert "verified" in capsys.readouterr().out
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)
    summary = json.loads((copy / "summary.json").read_text())
    won = summary["tasks"][0]["winners"]
    summary["tasks"][0]["winners"] = [s for s in range(3) if s not in won] or [0]
    write_json(copy / "summary.json", summary)
    assert main(["market", "verify", str(copy)]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    # logs that hold nothing verify nothing: that is a failure, not a pass
    logs = copy / "chain" / "market_logs.json"
    saved_logs = logs.read_text()
    logs.write_text("[]")
    assert main(["market", "verify", str(copy)]) == 1
    assert "the logs hold no such task" in capsys.readouterr().out
    logs.write_text(saved_logs)
    # the spec the terms commit to: any change to the saved JSON is caught
    write_json(copy / "summary.json", json.loads((folder / "summary.json").read_text()))
    spec = copy / "specs" / "task-1.json"
    spec.write_bytes(
        spec.read_bytes().replace(b'"target_accuracy": 0.05', b'"target_accuracy": 0.5')
    )
    assert main(["market", "verify", str(copy)]) == 1
    assert "is not the spec the terms commit to" in capsys.readouterr().out


def test_verify_catches_a_colluding_majority_on_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ESs vote, with a majority, for an outcome that pays one more wei than the
    mechanism's: the contract accepts it (it cannot run RANet), verify does not."""
    genuine = market_run.compute_award

    def inflated(*args: Any) -> Award:
        award = genuine(*args)
        payments = (award.payments_wei[0] + 1, *award.payments_wei[1:])
        return dataclasses.replace(award, payments_wei=payments)

    monkeypatch.setattr(market_run, "compute_award", inflated)
    folder = tmp_path / "run"
    run_into(folder, small(tasks=1, rounds=1))
    assert main(["market", "verify", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "differs from the mechanism's" in out


def test_an_escrow_below_the_payments_expires_and_refunds(tmp_path: Path) -> None:
    config = small(tasks=1, reward=1e-9)
    summary = run_into(tmp_path / "run", config)
    (task,) = summary["tasks"]
    assert task["status"] == "cancelled"
    assert "exceed the escrow" in task["note"] and "market.reward" in task["note"]
    assert task["payments"] == {} and task["reconciled"] is True
    assert "FLAggregator.submit" not in task["gas_by_function"]


def test_a_task_no_es_can_serve_expires_and_refunds(tmp_path: Path) -> None:
    """At p_g = 100 the blockchain cost (32) prices every ED out: no ES bids, the auction
    lacks the bids the mechanism needs, and the task expires with the escrow refunded."""
    summary = run_into(tmp_path / "run", small(tasks=1, gas_price=100.0))
    (task,) = summary["tasks"]
    assert not any(b["bids"] for b in task["bids"])
    assert task["status"] == "cancelled"
    assert task["note"] == "only 0 of the 3 bids needed"
    assert task["reconciled"] is True and task["payments"] == {}


def test_market_on_anvil_reconciles_and_verifies_over_rpc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = small(tasks=1)
    with running_anvil(accounts=1 + 3 + 9) as url:
        summary = run_into(tmp_path / "run", config, url)
        assert summary["backend"] != "py-evm"
        assert summary["reconciled"] is True
        assert summary["tasks"][0]["status"] == "completed"
        assert main(["market", "verify", str(tmp_path / "run"), "--rpc-url", url]) == 0
    assert "verified" in capsys.readouterr().out


def test_a_chain_that_stops_answering_is_named_and_recorded(tmp_path: Path) -> None:
    config = small(tasks=1)
    folder = tmp_path / "run"
    with anvil_process(accounts=1 + 3 + 9) as (url, proc):

        def log(line: str) -> None:
            if "published task" in line:
                proc.kill()
                proc.wait()

        run = RunFolder.create(folder, config.to_dict(), config.seed, None)
        with pytest.raises(ChainError, match=r"stopped in task 0, phase bidding.*--resume"):
            run_market(config, run, url, log=log)
    progress = json.loads((folder / "progress.json").read_text())
    assert progress["status"] == "failed"
    assert progress["failure"]["phase"] == "bidding"
    assert [s["step"] for s in progress["steps"]] == ["calibration", "publish"]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_toml(tmp_path / "small.toml", SMALL)


def _wait_for_step(progress: Path, step: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        if progress.is_file():
            with_step = [s["step"] for s in json.loads(progress.read_text())["steps"]]
            if step in with_step:
                return
        time.sleep(0.2)
    raise AssertionError(f"no {step!r} step within 10 minutes")


def test_resume_after_a_killed_run_reproduces_the_model_hashes(
    embedded: tuple[Path, dict[str, Any]], config_file: Path, tmp_path: Path
) -> None:
    """Kill -9 during task 1's training; --resume replays the recorded steps (checking each)
    and finishes; every round's model hash equals the uninterrupted run's."""
    folder = tmp_path / "killed"
    cmd = [TBCIM, "market", "run", "--config", str(config_file)]
    proc = subprocess.Popen([*cmd, "--out", str(folder)], stdout=subprocess.DEVNULL)
    try:
        _wait_for_step(folder / "progress.json", "round 1", proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = json.loads((folder / "progress.json").read_text())
    assert killed["status"] == "running" and not (folder / "summary.json").exists()
    resumed = subprocess.run(
        [TBCIM, "market", "run", "--resume", str(folder)],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "(replayed)" in resumed.stdout
    final = json.loads((folder / "progress.json").read_text())
    assert final["status"] == "completed"
    assert final["steps"][: len(killed["steps"])] == killed["steps"]
    _, reference = embedded
    summary = json.loads((folder / "summary.json").read_text())
    hashes = [[r["model_hash"] for r in t["rounds"]] for t in summary["tasks"]]
    assert hashes == [[r["model_hash"] for r in t["rounds"]] for t in reference["tasks"]]


def test_resume_and_out_errors(
    embedded: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _ = embedded
    assert main(["market", "run", "--resume", str(folder)]) == 2
    assert "completed already" in capsys.readouterr().err
    assert main(["market", "run", "--config", str(config_file), "--out", str(folder)]) == 2
    assert "holds a run already" in capsys.readouterr().err
    assert main(["market", "run", "--resume", str(tmp_path)]) == 2
    assert "not a market run folder" in capsys.readouterr().err
    assert main(["market", "run", "--config", str(config_file)]) == 2
    assert "--out" in capsys.readouterr().err


def test_retrain_and_resume_flag_errors(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    analytic = json.loads(json.dumps(SMALL))
    analytic["market"]["mechanism"] = "vcg"
    path = write_toml(tmp_path / "vcg.toml", analytic)
    out = tmp_path / "out"
    assert main(["market", "run", "--config", str(path), "--retrain", "--out", str(out)]) == 2
    assert "--retrain: vcg is analytic" in capsys.readouterr().err
    assert not out.exists()
    assert main(["market", "run", "--resume", str(out), "--config", str(config_file)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_a_partition_that_cannot_be_drawn_is_refused_before_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """30 EDs with at least 50 images each exceed digits' training split: named by its key
    before a run folder or a chain exists."""
    crowded = json.loads(json.dumps(SMALL))
    crowded["selection"] = {"min_eds": 10, "max_eds": 10}
    crowded["fl"]["min_samples"] = 50
    path = write_toml(tmp_path / "crowded.toml", crowded)
    out = tmp_path / "out"
    assert main(["market", "run", "--config", str(path), "--out", str(out)]) == 2
    assert "fl.min_samples" in capsys.readouterr().err
    assert not out.exists()
