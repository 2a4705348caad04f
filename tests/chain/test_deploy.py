"""scripts/deploy_local.py end to end: embedded py-evm and a real anvil node."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from chain_node.node import ChainNode

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "deploy_local.py"
FUNCTIONS = {
    "FLAggregator.registerWorker",
    "FLAggregator.publishInitialChunk",
    "FLAggregator.openRound",
    "FLAggregator.commit",
    "FLAggregator.submit",
    "FLAggregator.aggregateChunk",
    "FLMarket.publishTask",
    "FLMarket.commitBid",
    "FLMarket.revealBid",
    "FLMarket.submitOutcome",
    "FLMarket.setAggregator",
    "FLMarket.acceptAward",
    "FLMarket.attest",
    "FLMarket.claimDevicePay",
    "FLMarket.withdraw",
}


@pytest.fixture(scope="module")
def deploy_local() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_local", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_report(report: dict, backend: str, params: int, devices: int) -> None:
    assert report["backend"] == backend
    assert report["compiler"].startswith("0.8.")
    assert set(report["contracts"]) == {"FLMarket", "FLAggregator"}
    assert all(info["deploy_gas"] > 100_000 for info in report["contracts"].values())
    assert set(report["gas"]) >= FUNCTIONS
    assert report["gas"]["FLAggregator.submit"]["calls"] == devices
    smoke = report["smoke"]
    assert smoke["params"] == params and smoke["accepted"] == devices
    # On-chain FedAvg equals numpy FedAvg of the decoded vectors within one quantisation step.
    assert smoke["fedavg_max_abs_error"] <= smoke["quantisation_step"]
    assert smoke["gas_per_param"] > 0
    # the market task: the escrow splits into the withdrawals and the EDs' claims, to the wei
    market = smoke["market"]
    ed_pay = sum(market["ed_payments_wei"].values())
    payments = sum(market["payments_wei"].values())
    assert market["refund_wei"] == market["reward_wei"] - payments
    assert sum(market["es_withdrawn_wei"].values()) == payments - ed_pay
    assert market["contract_ether_left_wei"] == 0
    assert ed_pay > 0 and len(market["payments_wei"]) >= 1
    # g_e: each ED's gas on the aggregator in the round (commitment and chunks), averaged.
    ed_gas = [
        e["gas_used"]
        for e in report["ledger"]
        if e["role"] == "ed" and e["contract"] == "FLAggregator"
    ]
    assert report["g_e"] == pytest.approx(sum(ed_gas) / devices)


def test_deploy_local_writes_the_report(deploy_local: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "deploy.json"
    assert deploy_local.main(["--params", "100", "--devices", "3", "--json", str(out)]) == 0
    _check_report(json.loads(out.read_text()), "py-evm", 100, 3)


def test_deprecated_out_flag_still_writes_the_report(
    deploy_local: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deploy.json"
    assert deploy_local.main(["--params", "20", "--devices", "2", "--out", str(out)]) == 0
    assert "--out is deprecated" in capsys.readouterr().err
    assert json.loads(out.read_text())["smoke"]["params"] == 20


def test_same_deploy_and_smoke_round_on_anvil(deploy_local: ModuleType, anvil_url: str) -> None:
    node = ChainNode.connect(anvil_url, n_servers=3, n_devices=3, seed=0)
    report = deploy_local.deploy_and_smoke(node, params=100, devices=3, seed=0)
    _check_report(report, "rpc", 100, 3)
    # The elected producers are the blocks' coinbases on anvil too.
    miners = {e["producer"] for e in report["ledger"]}
    assert miners <= set(node.servers)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--params", "0"], "--params"),
        (["--devices", "0"], "--devices"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_arguments_are_rejected_before_work(
    deploy_local: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        deploy_local.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unreachable_rpc_url_is_a_clear_error(
    deploy_local: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy_local.main(["--rpc-url", "http://127.0.0.1:9"]) == 2
    assert "no Ethereum JSON-RPC node answers" in capsys.readouterr().err
