"""scripts/bench_scale.py (issue 13 item 4) without Ray or a chain: a row's arithmetic, the
overhead, the projection and the goals on hand-made numbers, the process-tree RSS, and the
argument errors, each raised before any work."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tbcim.blockchain.aggregator import MAX_TX_BYTES, MAX_TX_GAS, tx_bounds
from tbcim.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_scale.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def timing(bench: ModuleType, round_s: float, train_s: float, chain_s: float, **kw: Any) -> Any:
    fields = {"gas": 1000, "ed_gas": 800, "participants": 10, "accepted": 9, **kw}
    return bench.RoundTiming(round_s=round_s, train_s=train_s, chain_s=chain_s, **fields)


def test_overhead_is_the_rest_of_the_round_per_ed(bench: ModuleType) -> None:
    assert bench.overhead_ms_per_ed(12.0, 4.0, 6.0, 100) == pytest.approx(20.0)
    assert bench.overhead_ms_per_ed(1.0, 0.5, 0.5, 10) == pytest.approx(0.0)


def test_flower_round_spreads_ed_work_over_workers(bench: ModuleType) -> None:
    """Training: Σ train / workers; chain: the ServerApp's plus Σ (handler − train) / workers."""
    train, chain, ed_chain = bench.flower_round(2.0, [0.1] * 10, [0.3] * 10, 2)
    assert (train, chain, ed_chain) == pytest.approx((0.5, 2.0 + 1.0, 1.0))
    one = bench.flower_round(0.0, [0.2, 0.4], [0.2, 0.4], 1)
    assert one == pytest.approx((0.6, 0.0, 0.0))


def test_row_averages_the_rounds_after_the_first(bench: ModuleType) -> None:
    rounds = [
        timing(bench, 30.0, 20.0, 5.0, gas=7, ed_gas=7, participants=10),  # the cold round
        timing(bench, 10.0, 4.0, 3.0, gas=1000, ed_gas=800, participants=10, accepted=8),
        timing(bench, 14.0, 6.0, 5.0, gas=3000, ed_gas=1200, participants=10, ed_chain_s=1.0),
    ]
    row = bench.make_row(100, "flower", 2, rounds, setup_s=1.5, start_s=8.0, peak_rss_mb=512.0)
    assert row["s_per_round"] == pytest.approx(12.0)
    assert row["train_s"] == pytest.approx(5.0)
    assert row["chain_s"] == pytest.approx(4.0)
    assert row["ed_chain_s"] == pytest.approx(0.5)
    assert row["overhead_ms_per_ed"] == pytest.approx(1000 * (12.0 - 5.0 - 4.0) / 100)
    assert row["gas_per_round"] == pytest.approx(2000.0)
    assert row["gas_per_ed"] == pytest.approx((800 + 1200) / 20)
    assert row["eds_per_s"] == pytest.approx(10 / 12.0)
    assert row["accepted_per_round"] == pytest.approx(8.5)
    assert (row["rounds"], row["rounds_averaged"], row["first_round_s"]) == (3, 2, 30.0)
    assert row["round_s"] == [30.0, 10.0, 14.0]
    issue_keys = {"eds", "engine", "workers", "s_per_round", "train_s", "chain_s"}
    issue_keys |= {"overhead_ms_per_ed", "peak_rss_mb", "gas_per_round"}
    assert issue_keys <= row.keys()
    assert (row["eds"], row["engine"], row["workers"], row["peak_rss_mb"]) == (
        100,
        "flower",
        2,
        512.0,
    )


def test_row_of_one_round_is_that_round_and_of_none_an_error(bench: ModuleType) -> None:
    row = bench.make_row(
        10, "local", 1, [timing(bench, 2.0, 0.5, 1.0)], setup_s=0, start_s=0, peak_rss_mb=1
    )
    assert (row["s_per_round"], row["rounds_averaged"]) == (2.0, 1)
    assert row["overhead_ms_per_ed"] == pytest.approx(50.0)
    with pytest.raises(ConfigError, match="at least one measured round"):
        bench.make_row(10, "local", 1, [], setup_s=0, start_s=0, peak_rss_mb=1)


def flower_row(eds: int, workers: int, s: float, chain: float, gas_per_ed: float) -> dict[str, Any]:
    return {
        "eds": eds,
        "engine": "flower",
        "workers": workers,
        "s_per_round": s,
        "chain_s": chain + 1.0,
        "ed_chain_s": 1.0,  # the EDs' own: in the workers' time, not the server's chain
        "gas_per_round": gas_per_ed * eds,
        "overhead_ms_per_ed": 15.0,
        "rounds": 2,
    }


def test_projection_is_the_slower_of_the_workers_and_the_chain(bench: ModuleType) -> None:
    rows = [
        flower_row(10, 2, 1.0, 0.1, 5e5),
        flower_row(100, 1, 20.0, 2.0, 1e6),
        flower_row(100, 2, 10.0, 2.0, 1e6),  # the base: most EDs, then most workers
        {"eds": 1000, "engine": "local", "workers": 1, "s_per_round": 1.0},
    ]
    p = bench.projection(rows, nodes=100, cpus_per_node=2, block_gas=30_000_000, block_time_s=12)
    assert p["from_row"] == {"eds": 100, "engine": "flower", "workers": 2}
    assert p["gas_per_ed_all_transactions"] == pytest.approx(1e6)
    assert p["worker_s_per_ed"] == pytest.approx(2 * (10.0 - 2.0) / 100)
    assert p["train_eds_per_s"] == pytest.approx(200 / 0.16)
    assert p["eds_per_block"] == pytest.approx(30.0)
    assert p["chain_eds_per_s"] == pytest.approx(2.5)
    assert (p["limit"], p["eds_per_s"]) == ("chain", pytest.approx(2.5))
    assert p["ratio"] == pytest.approx(1250 / 2.5)
    fast_chain = bench.projection(rows, nodes=1, cpus_per_node=1, block_gas=10**12, block_time_s=1)
    assert fast_chain["limit"] == "training"
    assert fast_chain["eds_per_s"] == pytest.approx(1 / 0.16)
    assert bench.projection(rows[3:])["available"] is False


def test_goals_read_the_flower_two_worker_row(bench: ModuleType) -> None:
    met = bench.goals([flower_row(1000, 2, 10.0, 2.0, 1e6)])
    assert met["flower_2_workers_completes_a_1000_ed_round"]["met"]
    assert met["flower_overhead_at_most_20_ms_per_ed"] == {
        "value": 15.0,
        "met": True,
        "at_eds": 1000,
    }
    missed = bench.goals([flower_row(160, 2, 10.0, 2.0, 1e6) | {"overhead_ms_per_ed": 25.0}])
    assert not missed["flower_2_workers_completes_a_1000_ed_round"]["met"]
    assert missed["flower_2_workers_completes_a_1000_ed_round"]["largest_eds_completed"] == 160
    assert missed["flower_overhead_at_most_20_ms_per_ed"]["met"] is False
    nothing = bench.goals([])
    assert not any(g["met"] for g in nothing.values())


def test_max_eds_is_the_largest_multiple_of_the_ess_whose_aggregation_fits(
    bench: ModuleType,
) -> None:
    def fits(workers: int) -> bool:  # the caps, from the contract's bounds of a 1-word chunk
        sb, sg, ab, ag = tx_bounds(1, workers)
        return max(sb, ab) <= MAX_TX_BYTES and max(sg, ag) <= MAX_TX_GAS

    n = bench.max_eds()
    assert n % bench.SERVERS == 0 and fits(n) and not fits(n + bench.SERVERS)


def test_a_population_is_shared_out_over_the_fewest_tasks_within_max_eds(
    bench: ModuleType,
) -> None:
    n = bench.max_eds()
    assert [bench.tasks_for(e) for e in (10, n, n + 5, 1000)] == [1, 1, 2, -(-1000 // n)]
    assert -(-1000 // bench.tasks_for(1000)) <= n


def test_the_chain_table_is_one_tasks_and_fits_the_largest_share(bench: ModuleType) -> None:
    """The population's chain table covers its largest task's share and no more than one
    aggregator takes (scale_config raises otherwise: 1,000 EDs in one table did)."""
    n = bench.max_eds()
    for eds in (10, n, 1000):
        share = -(-eds // bench.tasks_for(eds))
        chain = bench.scale_config(eds, 2).chain
        assert share <= chain.eds <= n and chain.eds - share < bench.SERVERS


def test_plan_runs_local_first_then_flower_by_workers(bench: ModuleType) -> None:
    plan = bench.Plan((10, 20), ("flower", "local"), (2, 1), 2, 12.0)
    assert plan.runs() == [
        (10, "local", 1),
        (20, "local", 1),
        (10, "flower", 2),
        (20, "flower", 2),
        (10, "flower", 1),
        (20, "flower", 1),
    ]


def test_tree_rss_counts_the_children(bench: ModuleType) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:

        def rss(pid: int) -> int:
            text = Path(f"/proc/{pid}/status").read_text()
            return int(next(ln for ln in text.splitlines() if ln.startswith("VmRSS:")).split()[1])

        for _ in range(50):  # until the child's interpreter is up
            if rss(child.pid) > 4000:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        total = bench._tree_rss_kb(os.getpid())
        assert total >= rss(child.pid) + 0.9 * rss(os.getpid())
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    ("flags", "field", "words"),
    [
        (["--eds", "7"], "--eds", "multiple of the 5 ESs"),
        (["--eds", "0"], "--eds", "multiple"),
        (["--eds", "1215"], "--eds", "to 1212 (digits' training images)"),
        (["--engines", "local,ray"], "--engines", "unknown engine(s) ['ray']"),
        (["--workers", "0"], "--workers", "positive"),
        (["--workers", "2,0"], "--workers", "positive"),
        (["--rounds", "0"], "--rounds", "positive"),
        (["--block-time", "0"], "--block-time", "positive"),
    ],
)
def test_bad_arguments_fail_before_any_work(
    bench: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    field: str,
    words: str,
) -> None:
    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(bench, "run_row", no_work)
    out = tmp_path / "scale.json"
    with pytest.raises(ConfigError) as err:
        bench.main(["--json", str(out), *flags])
    assert err.value.field == field and words in err.value.problem
    assert not out.exists()


def test_unparsable_lists_and_a_non_json_output_are_refused(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        bench.main(["--json", str(tmp_path / "x.json"), "--eds", "10,ten"])
    assert stop.value.code == 2
    assert "not a comma-separated list of integers" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"name a \.json file"):
        bench.main(["--json", str(tmp_path / "x.csv")])
