"""The Flower engine (issue 13): the EDs as Flower clients on Ray, the chain an anvil node.

The oracle is the in-process engine: same config and seed, so the same per-round accepted sets,
rejection reasons and global-model hashes. Ray starts once for the whole test session
(``ray_runtime``); one Flower run (5 rounds, 6 EDs, an attacker, ES 2 down in round 1, ED 4's
worker process killed in round 3) serves the acceptance test and the dropped-ED test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chain_node.anvil import _free_port, running_anvil
from chain_node.node import ChainNode
from tbcim.cli import main
from tbcim.errors import ConfigError
from tbcim.fl.config import FLConfig
from tbcim.fl.flower.engine import FlowerOptions, flower_devices, ray_session, run_flower_rounds
from tbcim.fl.flower.server_app import DROPPED, FlowerEngineError
from tbcim.fl.onchain import OnChainFL
from tbcim.fl.runner import ChainConfig, FailureConfig, FLRunConfig, run_fl
from tbcim.fl.task import build_task

# xdist_group: every Flower test on one test worker, so Ray starts once (tests/conftest.py).
pytestmark = [pytest.mark.anvil, pytest.mark.xdist_group("ray")]

N_ES, PER_ES = 3, 2
N_EDS = N_ES * PER_ES
KILLED_ED, KILLED_ROUND = 4, 3


def run_config(rounds: int) -> FLRunConfig:
    # η = 0.1 and one local epoch keep it short; a sign-flipper; ES 2 down in round 1.
    fl = FLConfig(
        lr=0.1, local_epochs=1, attack="sign_flip", attack_fraction=0.2, seed=11,
        global_rounds=rounds,
    )  # fmt: skip
    chain = ChainConfig(servers=N_ES, eds_per_server=PER_ES, commit_blocks=1, round_blocks=2)
    return FLRunConfig(fl=fl, chain=chain, failure=FailureConfig(servers=(2,), start=1, end=2))


@pytest.fixture(scope="module")
def runs(ray_runtime: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The local engine (3 rounds) and the Flower engine (5 rounds, ED 4 killed in round 3),
    each on its own anvil."""
    out = tmp_path_factory.mktemp("flower")
    with running_anvil(accounts=1 + N_ES + N_EDS) as url:
        node = ChainNode.connect(url, n_servers=N_ES, n_devices=N_EDS, seed=11)
        run_fl(run_config(3), node, out / "local")
    options = FlowerOptions(workers=1, kill={KILLED_ED: KILLED_ROUND}, reply_timeout_s=300)
    with running_anvil(accounts=1 + N_ES) as url:
        node = ChainNode.connect(url, n_servers=N_ES, n_devices=0, seed=11)
        summary = run_fl(run_config(5), node, out / "flower", flower=options)
    return {
        "local": json.loads((out / "local" / "rounds.json").read_text()),
        "flower": json.loads((out / "flower" / "rounds.json").read_text()),
        "ledger": json.loads((out / "flower" / "ledger.json").read_text())["entries"],
        "summary": summary,
        "servers": node.servers,
    }


def test_flower_engine_gives_the_local_engines_accepted_sets_and_model_hashes(
    runs: dict[str, Any],
) -> None:
    """Issue 13's acceptance: 3 rounds, 6 EDs, same seed: the same accepted sets, rejection
    reasons and global-model hashes, round by round (the submissions' order within a block is
    the node's arrival order on the Flower engine; the model does not depend on it)."""
    local, flower = runs["local"], runs["flower"][:3]
    for a, b in zip(local, flower, strict=True):
        assert b["model_hash"] == a["model_hash"]
        assert b["accepted"] == a["accepted"]
        assert b["rejected"] == a["rejected"]
        assert b["participants"] == a["participants"]
        assert b["failed_servers"] == a["failed_servers"]
    assert len({r["model_hash"] for r in local}) == 3
    assert runs["summary"]["engine"] == "flower"


def test_each_ed_signs_its_own_transactions_and_the_elected_es_mines(
    runs: dict[str, Any],
) -> None:
    """Every ED transaction comes from that ED's own key (one commit and one submit per round
    it took part in), none from an ES; blocks are produced by ESs only, never by the failed ES
    in its failed round."""
    own = flower_devices(11, N_EDS)
    ed_entries = [e for e in runs["ledger"] if e["role"] == "ed"]
    assert {e["sender"] for e in ed_entries} == set(own)
    per_round: dict[tuple[int, str], list[str]] = {}
    for e in ed_entries:
        per_round.setdefault((e["round"], e["sender"]), []).append(e["function"])
    assert all(sorted(f) == ["commit", "submit"] for f in per_round.values())
    assert {e["producer"] for e in runs["ledger"]} <= set(runs["servers"])
    round_two = runs["flower"][1]["chain_round"]
    producers = {e["producer"] for e in runs["ledger"] if e["round"] == round_two}
    assert runs["servers"][2] not in producers


def test_a_dead_ed_process_misses_its_round_and_the_run_goes_on(runs: dict[str, Any]) -> None:
    """ED 4's worker process exits mid-round 3: the round closes without it (its reason says
    so), the others are included and the model moves on; in round 4 the restarted worker
    serves ED 4 again and its update (checked against its on-chain history) is accepted."""
    flower = runs["flower"]
    assert len(flower) == 5
    killed, after = flower[KILLED_ROUND], flower[KILLED_ROUND + 1]
    assert KILLED_ED in killed["participants"]
    assert killed["rejected"][str(KILLED_ED)].startswith(DROPPED)
    assert KILLED_ED not in killed["accepted"] and len(killed["accepted"]) >= 3
    assert str(KILLED_ED) not in {str(ed) for ed in killed["ed_gas"]}
    assert killed["model_hash"] != flower[KILLED_ROUND - 1]["model_hash"]
    assert KILLED_ED in after["accepted"]
    assert after["chain_round"] == killed["chain_round"] + 1


def test_a_runtime_that_cannot_start_is_a_clear_error(ray_runtime: None) -> None:
    """Each ED's worker asks for more CPUs than Ray has (1): Flower cannot build its actor
    pool, and the run stops with Flower's reason instead of waiting for replies forever."""
    cfg = FLConfig(lr=0.1, local_epochs=1, seed=1)
    task = build_task(cfg, n_eds=2)
    with running_anvil(accounts=2) as url:
        node = ChainNode.connect(url, n_servers=1, n_devices=0, seed=1)
        fl = OnChainFL(node, task, [0, 0], device_accounts=flower_devices(1, 2))
        options = FlowerOptions(workers=4, cpus_per_ed=3, start_timeout_s=5)
        with pytest.raises(FlowerEngineError, match="ActorPool is empty"):
            run_flower_rounds(fl, 1, options=options)


def test_ray_that_cannot_start_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def refuse(**_: object) -> None:
        raise ConnectionError("the GCS at 10.0.0.1:6379 does not answer")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with (
        pytest.raises(FlowerEngineError, match="Ray could not start: ConnectionError: the GCS"),
        ray_session(2),
    ):
        pytest.fail("the block must not run")


def test_no_node_at_the_rpc_url_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    args = ["fl", "run", "--engine", "flower", "--rpc-url", url, "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert f"no Ethereum JSON-RPC node answers at {url}" in capsys.readouterr().err


def test_what_the_flower_engine_cannot_run_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "copy.toml"
    cfg.write_text('[fl]\nattack = "copy"\n')
    out = tmp_path / "o"
    assert main(["fl", "run", "--engine", "flower", "--config", str(cfg), "--out", str(out)]) == 2
    assert "fl.attack: the copy attack" in capsys.readouterr().err
    assert main(["fl", "run", "--engine", "flower", "--workers", "0", "--out", str(out)]) == 2
    assert "--workers" in capsys.readouterr().err
    assert not out.exists()
    embedded = ChainNode.embedded(n_servers=1, n_devices=2, seed=1)
    task = build_task(FLConfig(lr=0.1, local_epochs=1, seed=1), n_eds=2)
    fl = OnChainFL(embedded, task, [0, 0], bootstrap=False)
    with pytest.raises(ConfigError, match="--rpc-url"):
        run_flower_rounds(fl, 1)
