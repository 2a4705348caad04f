"""Issue 13's scaling benchmark: the digits task with 10 to 1,000 EDs on the local engine and on
the Flower engine (Ray) at 1 and 2 workers, every run on a fresh anvil node; one JSON row per
(EDs, engine, workers) with the issue's keys, and the projection to a 100-node Ray cluster.

    python scripts/bench_scale.py --json results/bench_scale.json [--eds 10,100,1000] \
        [--rounds 2] [--engines local,flower] [--workers 1,2] [--block-time 12]

**The task** (:func:`scale_config`): digits, the smallest model (``mlp``: 64-32-10, 2,410
parameters), the IID partition (digits has 1,212 training images after the validation and
test splits: 1,000 EDs hold 1 or 2 each, 100 EDs 12 or 13; the IID split gives every ED a share
at any size, where a Dirichlet draw may leave an ED with none), δ1 = 2 local epochs of one full
batch each (``batch_size`` 2,048 exceeds every shard): 2 local steps per ED at every size.
5 ESs, the EDs spread evenly over them, no attacker, no failed ES, the aggregator's default
thresholds; anvil gets 30M-gas blocks.

**More EDs than one aggregator takes.** One aggregator task takes at most :func:`max_eds`
(160) submitters per round at this model: its aggregation transaction carries a chunk of every
submitter's update and must fit the per-transaction gas and byte caps (2^24 gas, 128 KiB).
A larger population is shared out over :func:`tasks_for` aggregator tasks on the same chain
(:func:`tbcim.fl.onchain.split_population`: ED i in task i mod k; 1,000 EDs make 7 tasks of
142 or 143), each with its own contract and global model. In an FL round the tasks' rounds
run one after the other: the local engine in this process, the Flower engine inside one
Flower run (:func:`tbcim.fl.flower.engine.run_flower_tasks`: one Ray start, one discovery of
all 1,000 EDs). A row's round is the FL round over all its tasks.

**A row's numbers** (per FL round, mean over the rounds after the first, which also pays the
Flower workers' imports and task build: ``first_round_s``; with one round, that round).
``round_s`` of each round is timed around the round loop (every task's ``run_round``), so the
EDs' funding, Ray's start and the Flower discovery message are not in it (``setup_s``,
``start_s``):

- ``s_per_round``: the round's wall time;
- ``train_s``: training, as wall time. Local engine: the round's in-process training of every
  ED (``ChainRound.train_seconds``). Flower engine: the sum over EDs of the time each spends
  reading the global model from the chain and training (the ``train_s`` its ``ClientApp``
  reports), divided by ``workers`` (the EDs that train at once);
- ``chain_s``: the chain's share (with several tasks, summed over them). Local engine:
  ``ChainRound.chain_seconds`` (opening the
  round, every ED's commit and submission sent from this process, the blocks, the deadline,
  aggregation, the model read back). Flower engine: what the ``ServerApp`` does on chain
  (``ChainRound.chain_seconds`` less the wall time of the ``train.submit`` phase) plus the
  EDs' own chain work in the workers (each ED's ``commit`` and ``submit`` handlers' wall time
  less its training: screening, quantising, signing and sending its transactions), summed over
  EDs and divided by ``workers``; the handlers' times come from the engine's own handlers
  wrapped by :func:`timed_client_app`;
- ``overhead_ms_per_ed`` = 1000 (``s_per_round`` − ``train_s`` − ``chain_s``) / EDs. On the
  Flower engine this is the two ED phases' wall time less the handlers' time over the workers:
  Flower's messaging, Ray's scheduling and the idle time of a worker waiting for the other
  (plus the round loop's own work below). On the local engine it is the round loop's own work
  (the model read before training, screening, the evaluation of the new model), which the
  Flower rows also carry;
- ``peak_rss_mb``: the peak, over the row's run (deployment included), of the summed resident
  set size of this process and all its descendants (anvil; Ray's GCS, raylet and worker
  processes), sampled every 0.2 s from ``/proc`` (psutil is not installed). Shared pages are
  counted once per process, so the sum over-counts;
- ``gas_per_round``: the gas of every transaction of the round; ``gas_per_ed`` the EDs' own
  (commit and submission) per participating ED.

The projection (:func:`projection`) is arithmetic on the measured rows; its assumptions are
written into the JSON beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbcim.configfile import int_list, provenance
from tbcim.errors import ConfigError, TbcimError
from tbcim.results import machine_label, write_json

if TYPE_CHECKING:
    from tbcim.fl.onchain import ChainRound, OnChainFL
    from tbcim.fl.runner import FLRunConfig

ENGINES = ("local", "flower")
SERVERS = 5
BLOCK_GAS_LIMIT = 30_000_000
#: Digits' training images after the 10 % validation and 25 % test splits (the IID partition
#: needs at least one per ED).
DIGITS_TRAIN = 1212
#: The ``mlp``'s parameters on digits (64-32-10).
MODEL_PARAMS = 64 * 32 + 32 + 32 * 10 + 10
CLUSTER_NODES = 100
SAMPLE_S = 0.2


@dataclass(frozen=True)
class Plan:
    """What to run: every size of ``eds`` on every engine (Flower at every ``workers``)."""

    eds: tuple[int, ...]
    engines: tuple[str, ...]
    workers: tuple[int, ...]
    rounds: int
    block_time_s: float

    def __post_init__(self) -> None:
        if not self.eds:
            raise ConfigError("--eds", "name at least one number of EDs")
        bad = [n for n in self.eds if n < SERVERS or n % SERVERS or n > DIGITS_TRAIN]
        if bad:
            raise ConfigError(
                "--eds",
                f"{bad}: each size must be a multiple of the {SERVERS} ESs, from {SERVERS} to "
                f"{DIGITS_TRAIN} (digits' training images)",
            )
        unknown = [e for e in self.engines if e not in ENGINES]
        if unknown or not self.engines:
            raise ConfigError("--engines", f"unknown engine(s) {unknown}; known: {list(ENGINES)}")
        if "flower" in self.engines and (not self.workers or min(self.workers) < 1):
            raise ConfigError("--workers", f"must be positive integers, got {list(self.workers)}")
        if self.rounds < 1:
            raise ConfigError("--rounds", f"must be a positive integer, got {self.rounds}")
        if not self.block_time_s > 0:
            raise ConfigError("--block-time", f"must be positive, got {self.block_time_s}")

    def runs(self) -> list[tuple[int, str, int]]:
        """(EDs, engine, workers) in run order: the local engine first, then Flower by workers
        (Ray is started once per worker count); the local engine's ``workers`` is 1."""
        out = [(n, "local", 1) for n in self.eds if "local" in self.engines]
        if "flower" in self.engines:
            out += [(n, "flower", w) for w in self.workers for n in self.eds]
        return out


def tasks_for(eds: int) -> int:
    """Aggregator tasks a population of ``eds`` EDs is shared out over: the fewest that keep
    each within :func:`max_eds`."""
    return -(-eds // max_eds())


def max_eds() -> int:
    """The most EDs one aggregator task can take (a multiple of the ESs): the largest number of
    submitters whose aggregation transaction of one word fits the caps."""
    from tbcim.blockchain.aggregator import fits_limits

    n = SERVERS
    while fits_limits(1, n + SERVERS):
        n += SERVERS
    return n


def _list(text: str) -> tuple[int, ...]:
    try:
        return int_list(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from err


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Plan]:
    """The arguments and the plan, every value checked before any work."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--eds", type=_list, default=(10, 100, 1000))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--engines", type=lambda t: tuple(t.split(",")), default=ENGINES)
    parser.add_argument("--workers", type=_list, default=(1, 2))
    parser.add_argument(
        "--block-time", type=float, default=12.0, help="seconds per block in the projection"
    )
    args = parser.parse_args(argv)
    if args.json.suffix != ".json":
        raise ConfigError("--json", f"name a .json file, got {str(args.json)!r}")
    plan = Plan(args.eds, args.engines, args.workers, args.rounds, args.block_time)
    return args, plan


def scale_config(eds: int, rounds: int, seed: int = 0) -> FLRunConfig:
    """The benchmark's task for a population of ``eds`` EDs (see the module docstring). Its
    ``[chain]`` table is one aggregator task's: its EDs per ES cover the largest task's share
    of the population (all of it when one task takes it)."""
    from tbcim.fl.config import FLConfig
    from tbcim.fl.runner import ChainConfig, FLRunConfig

    fl = FLConfig(
        dataset="digits",
        model="mlp",
        partition="iid",
        local_epochs=2,
        batch_size=2048,
        lr=0.2,
        global_rounds=rounds,
        seed=seed,
    )
    per_task = -(-eds // tasks_for(eds))
    chain = ChainConfig(servers=SERVERS, eds_per_server=-(-per_task // SERVERS))
    return FLRunConfig(fl=fl, chain=chain)


# --- the arithmetic (tested on hand-made numbers) -------------------------------------------


@dataclass(frozen=True)
class RoundTiming:
    """One measured round (see the module docstring for each figure)."""

    round_s: float
    train_s: float
    chain_s: float
    gas: int
    ed_gas: int
    participants: int
    accepted: int
    ed_chain_s: float = 0.0  # Flower: the EDs' chain work in the workers (in chain_s)


def overhead_ms_per_ed(round_s: float, train_s: float, chain_s: float, eds: int) -> float:
    """What is neither training nor chain, per ED, in milliseconds."""
    return 1000.0 * (round_s - train_s - chain_s) / eds


def flower_round(
    server_chain_s: float,
    ed_train_s: Sequence[float],
    ed_handler_s: Sequence[float],
    workers: int,
) -> tuple[float, float, float]:
    """(train_s, chain_s, ed_chain_s) of a Flower round: the EDs' training over the workers;
    the ServerApp's chain time plus the EDs' handler time less their training, over the
    workers."""
    train = sum(ed_train_s) / workers
    ed_chain = (sum(ed_handler_s) - sum(ed_train_s)) / workers
    return train, server_chain_s + ed_chain, ed_chain


def make_row(
    eds: int,
    engine: str,
    workers: int,
    rounds: Sequence[RoundTiming],
    *,
    setup_s: float,
    start_s: float,
    peak_rss_mb: float,
) -> dict[str, Any]:
    """The issue's row from the measured rounds: means over the rounds after the first (the
    first pays the Flower workers' task build and imports; with one round, that round)."""
    if not rounds:
        raise ConfigError("rounds", "a row needs at least one measured round")
    warm = list(rounds[1:] if len(rounds) > 1 else rounds)
    n = len(warm)

    def mean(values: list[float]) -> float:
        return sum(values) / n

    s = mean([r.round_s for r in warm])
    train = mean([r.train_s for r in warm])
    chain = mean([r.chain_s for r in warm])
    return {
        "eds": eds,
        "engine": engine,
        "workers": workers,
        "s_per_round": s,
        "train_s": train,
        "chain_s": chain,
        "ed_chain_s": mean([r.ed_chain_s for r in warm]),
        "overhead_ms_per_ed": overhead_ms_per_ed(s, train, chain, eds),
        "peak_rss_mb": peak_rss_mb,
        "gas_per_round": mean([float(r.gas) for r in warm]),
        "gas_per_ed": sum(r.ed_gas for r in warm) / sum(r.participants for r in warm),
        "eds_per_s": mean([float(r.participants) for r in warm]) / s,
        "accepted_per_round": mean([float(r.accepted) for r in warm]),
        "rounds": len(rounds),
        "rounds_averaged": n,
        "round_s": [r.round_s for r in rounds],
        "train_s_by_round": [r.train_s for r in rounds],
        "chain_s_by_round": [r.chain_s for r in rounds],
        "first_round_s": rounds[0].round_s,
        "setup_s": setup_s,
        "start_s": start_s,
    }


def projection(
    rows: Sequence[dict[str, Any]],
    *,
    nodes: int = CLUSTER_NODES,
    cpus_per_node: int = 2,
    block_gas: int = BLOCK_GAS_LIMIT,
    block_time_s: float = 12.0,
) -> dict[str, Any]:
    """EDs per second a ``nodes``-node Ray cluster could train, against EDs per second the chain
    can take, from the measured Flower row with the most EDs (then the most workers).

    - workers: each ED occupies a worker for ``workers × (s_per_round − server chain) / eds``
      seconds, the server chain being ``chain_s − ed_chain_s`` (so its training, its own chain
      work and the framework overhead, all assumed to parallelise); the cluster has
      ``nodes × cpus_per_node`` workers;
    - chain: blocks of ``block_gas`` gas every ``block_time_s`` seconds; each ED costs the
      round's gas over its EDs (``gas_per_round / eds``: its commit and submission and its
      share of the ESs' opening and aggregation, which grows with the EDs).
    """
    flower = [r for r in rows if r["engine"] == "flower"]
    if not flower:
        return {"available": False, "why": "no Flower row measured"}
    base = max(flower, key=lambda r: (r["eds"], r["workers"]))
    server_chain_s = base["chain_s"] - base.get("ed_chain_s", 0.0)
    worker_s_per_ed = base["workers"] * (base["s_per_round"] - server_chain_s) / base["eds"]
    cluster_workers = nodes * cpus_per_node
    train_eds_per_s = cluster_workers / worker_s_per_ed
    gas_per_ed = base["gas_per_round"] / base["eds"]
    eds_per_block = block_gas / gas_per_ed
    chain_eds_per_s = eds_per_block / block_time_s
    limit = "chain" if chain_eds_per_s < train_eds_per_s else "training"
    return {
        "available": True,
        "from_row": {k: base[k] for k in ("eds", "engine", "workers")},
        "nodes": nodes,
        "cpus_per_node": cpus_per_node,
        "block_gas": block_gas,
        "block_time_s": block_time_s,
        "worker_s_per_ed": worker_s_per_ed,
        "train_eds_per_s": train_eds_per_s,
        "gas_per_ed_all_transactions": gas_per_ed,
        "eds_per_block": eds_per_block,
        "chain_eds_per_s": chain_eds_per_s,
        "limit": limit,
        "eds_per_s": min(train_eds_per_s, chain_eds_per_s),
        "ratio": max(train_eds_per_s, chain_eds_per_s) / min(train_eds_per_s, chain_eds_per_s),
        "assumptions": [
            f"{nodes} nodes of {cpus_per_node} CPUs like this machine's, one ED per CPU at a time",
            "each ED's worker time (training, model read, its own transactions, Flower's "
            "messaging) is this machine's at the measured row and parallelises perfectly; the "
            "ServerApp's and the SuperLink's per-message cost (one process) is not a bottleneck "
            "(not measured apart)",
            f"the chain: {block_gas:,}-gas blocks every {block_time_s:g} s, each ED costing the "
            "measured row's gas per round over its EDs (every transaction of the round)",
            "one aggregator task takes at most max_eds EDs per round (the aggregation "
            "transaction's caps), so a larger population is several tasks sharing the chain",
        ],
    }


def goals(rows: Sequence[dict[str, Any]], target_eds: int = 1000) -> dict[str, Any]:
    """Issue 13's goals: a round of ``target_eds`` EDs on the Flower engine at 2 workers, and
    its overhead per ED ≤ 20 ms (at the largest Flower ×2 row measured when the target was
    not)."""
    flower2 = [r for r in rows if r["engine"] == "flower" and r["workers"] == 2]
    target = next((r for r in flower2 if r["eds"] == target_eds), None)
    largest = max(flower2, key=lambda r: r["eds"], default=None)
    at = target or largest
    return {
        f"flower_2_workers_completes_a_{target_eds}_ed_round": {
            "value": None if target is None else target["rounds"],
            "met": target is not None and target["rounds"] >= 1,
            "largest_eds_completed": None if largest is None else largest["eds"],
        },
        "flower_overhead_at_most_20_ms_per_ed": {
            "value": None if at is None else at["overhead_ms_per_ed"],
            "met": at is not None and at["overhead_ms_per_ed"] <= 20.0,
            "at_eds": None if at is None else at["eds"],
        },
    }


# --- measuring ------------------------------------------------------------------------------


def _tree_rss_kb(root: int) -> int:
    """Summed VmRSS (kB) of ``root`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
            parents[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        rss[pid] = int(line.split()[1])
                        break
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakRss:
    """Samples the process tree's RSS every ``SAMPLE_S`` seconds; ``peak_mb`` since ``reset``."""

    def __init__(self) -> None:
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _tree_rss_kb(os.getpid()))
            self._stop.wait(SAMPLE_S)

    def reset(self) -> None:
        self._peak = _tree_rss_kb(os.getpid())

    def peak_mb(self) -> float:
        self._peak = max(self._peak, _tree_rss_kb(os.getpid()))
        return self._peak / 1024.0

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def _wrapped(owner: Any, name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    """``owner.name`` replaced by ``wrap(original)`` for the block."""
    original = getattr(owner, name)
    setattr(owner, name, wrap(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def _timing(
    records: Sequence[ChainRound],
    round_s: float,
    train_s: float,
    chain_s: float,
    ed_chain_s: float = 0.0,
) -> RoundTiming:
    """One FL round's timing over its tasks' records (gas and EDs summed)."""
    return RoundTiming(
        round_s=round_s,
        train_s=train_s,
        chain_s=chain_s,
        gas=sum(r.gas for r in records),
        ed_gas=sum(sum(r.ed_gas.values()) for r in records),
        participants=sum(len(r.participants) for r in records),
        accepted=sum(len(r.accepted) for r in records),
        ed_chain_s=ed_chain_s,
    )


def _build(config: FLRunConfig, eds: int, url: str, flower: bool) -> list[OnChainFL]:
    """The population of ``eds`` EDs and their aggregator task(s) on the node at ``url`` (one
    aggregator as ``tbcim fl run`` builds it, or :func:`tasks_for` of them)."""
    from chain_node.node import ChainNode
    from tbcim.fl.flower.engine import flower_devices
    from tbcim.fl.onchain import split_population
    from tbcim.fl.task import build_task

    c = config.chain
    node = ChainNode.connect(
        url, n_servers=c.servers, n_devices=0 if flower else eds, seed=config.fl.seed
    )
    task = build_task(config.fl, n_eds=eds)
    tasks = tasks_for(eds)
    return split_population(
        node,
        task,
        [ed * c.servers // eds for ed in range(eds)],  # the EDs spread evenly over the ESs
        c.aggregator(task.num_params, max_workers=-(-eds // tasks)),
        tasks,
        bootstrap=c.bootstrap_reference,
        device_accounts=flower_devices(config.fl.seed, eds) if flower else None,
    )


def run_local(tasks: Sequence[OnChainFL], rounds: int) -> list[RoundTiming]:
    """Each FL round: every task's round in turn, in this process."""
    out = []
    for r in range(rounds):
        started = time.perf_counter()
        records = [fl.run_round(r) for fl in tasks]
        round_s = time.perf_counter() - started
        train = sum(rec.train_seconds for rec in records)
        chain = sum(rec.chain_seconds for rec in records)
        out.append(_timing(records, round_s, train, chain))
    return out


def timed_client_app() -> Any:
    """The engine's ``ClientApp`` with each handler's wall time in its reply (``handler_s``):
    the same handlers (``tbcim.fl.flower.client_app``), called from a new app. Defined here,
    in the script, so that Ray ships it to the workers by value."""
    from flwr.clientapp import ClientApp

    from tbcim.fl.flower import client_app as engine_app

    app = ClientApp()

    def timed(handler: Any) -> Any:
        def run(message: Any, context: Any) -> Any:
            started = time.perf_counter()
            reply = handler(message, context)
            if reply.has_content() and "metrics" in reply.content:
                reply.content["metrics"]["handler_s"] = time.perf_counter() - started
            return reply

        return run

    app.query("whoami")(engine_app.whoami)
    app.train("commit")(timed(engine_app.commit))
    app.train("submit")(timed(engine_app.submit))
    return app


def run_flower(
    tasks: Sequence[OnChainFL], rounds: int, workers: int
) -> tuple[list[RoundTiming], float]:
    """The rounds on the Flower engine (Ray already started), and the seconds from the call to
    the first round's start (the EDs' funding, the actors' start, discovery)."""
    from tbcim.fl.flower import client_app as engine_app
    from tbcim.fl.flower.engine import FlowerOptions, run_flower_tasks
    from tbcim.fl.flower.server_app import ChainRoundControl
    from tbcim.fl.flower.spec import COMMIT, SUBMIT

    ed_train: list[float] = []
    ed_handler: list[float] = []
    submit_s: list[float] = []
    round_s: list[float] = []
    first_start: list[float] = []

    def send(original: Any) -> Any:
        def wrapper(self: Any, grid: Any, kind: str, *args: Any, **kwargs: Any) -> Any:
            replies = list(original(self, grid, kind, *args, **kwargs))
            for reply in replies if kind in (COMMIT, SUBMIT) else ():
                if reply.has_error():
                    continue
                metrics = reply.content["metrics"]
                ed_handler.append(float(metrics["handler_s"]))
                if kind == COMMIT:
                    ed_train.append(float(metrics["train_s"]))
            return replies

        return wrapper

    def phase(original: Any) -> Any:
        def wrapper(self: Any, grid: Any, kind: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            out = original(self, grid, kind, *args, **kwargs)
            if kind == SUBMIT:
                submit_s.append(time.perf_counter() - started)
            return out

        return wrapper

    def run_round(original: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            first_start.append(started)
            out = original(self, *args, **kwargs)
            round_s.append(time.perf_counter() - started)
            return out

        return wrapper

    timings: list[RoundTiming] = []

    def on_round(records: list[ChainRound]) -> None:
        server_chain = sum(r.chain_seconds for r in records) - sum(submit_s)
        train, chain, ed_chain = flower_round(server_chain, ed_train, ed_handler, workers)
        for measured in (ed_train, ed_handler, submit_s):
            measured.clear()
        timings.append(_timing(records, round_s[-1], train, chain, ed_chain))

    called = time.perf_counter()
    with (
        _wrapped(ChainRoundControl, "_send", send),
        _wrapped(ChainRoundControl, "_phase", phase),
        _wrapped(ChainRoundControl, "run_round", run_round),
        _wrapped(engine_app, "app", lambda _: timed_client_app()),
    ):
        run_flower_tasks(tasks, rounds, (), on_round, FlowerOptions(workers=workers))
    return timings, first_start[0] - called


def run_row(eds: int, engine: str, workers: int, rounds: int, rss: PeakRss) -> dict[str, Any]:
    """One row on a fresh anvil node."""
    from chain_node.anvil import running_anvil

    config = scale_config(eds, rounds)
    flower = engine == "flower"
    accounts = 1 + SERVERS + (0 if flower else eds)
    rss.reset()
    started = time.perf_counter()
    from tbcim.fl.flower.spec import ANVIL_BALANCE_ETHER  # the requester funds every ED

    node_args = ("--gas-limit", str(BLOCK_GAS_LIMIT), "--balance", str(ANVIL_BALANCE_ETHER))
    with running_anvil(*node_args, accounts=accounts) as url:
        tasks = _build(config, eds, url, flower)
        setup_s = time.perf_counter() - started
        if flower:
            timings, start_s = run_flower(tasks, rounds, workers)
        else:
            timings, start_s = run_local(tasks, rounds), 0.0
        peak = rss.peak_mb()
    row = make_row(
        eds, engine, workers, timings, setup_s=setup_s, start_s=start_s, peak_rss_mb=peak
    )
    row["tasks"] = len(tasks)
    row["num_params"] = tasks[0].task.num_params
    row["round_blocks"] = max(fl.client.config.round_blocks for fl in tasks)
    return row


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['eds']:>5} EDs {row['engine']:>6} x{row['workers']}: "
        f"{row['s_per_round']:7.2f} s/round "
        f"(train {row['train_s']:.2f}, chain {row['chain_s']:.2f}, overhead "
        f"{row['overhead_ms_per_ed']:.1f} ms/ED), {row['peak_rss_mb']:.0f} MB, "
        f"gas {row['gas_per_round']:,.0f}, setup {row['setup_s']:.1f} s, "
        f"start {row['start_s']:.1f} s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args, plan = parse_args(argv)  # every error before any work
    from tbcim.fl.flower.engine import ray_session

    bench_started = time.perf_counter()
    load = os.getloadavg()
    rows: list[dict[str, Any]] = []
    ray_start_s: dict[int, float] = {}
    with PeakRss() as rss:
        for n, engine, workers in plan.runs():
            if engine == "local":
                rows.append(run_row(n, engine, workers, plan.rounds, rss))
                _print_row(rows[-1])
                continue
            if workers in ray_start_s:
                continue
            started = time.perf_counter()
            with ray_session(workers):
                ray_start_s[workers] = time.perf_counter() - started
                for m in plan.eds:
                    rows.append(run_row(m, "flower", workers, plan.rounds, rss))
                    _print_row(rows[-1])
    out: dict[str, Any] = {
        "rows": rows,
        "projection": projection(rows, block_time_s=plan.block_time_s),
        "max_eds_per_task": max_eds(),
        "goals": goals(rows),
        "ray_start_s": ray_start_s,
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg(),
        "bench_seconds": time.perf_counter() - bench_started,
        "machine": f"{machine_label()}, {os.cpu_count()} CPUs",
        "definitions": (__doc__ or "").split("**A row's numbers**")[1].split("The projection")[0],
    }
    tables = {
        f"config_{n}": {
            **scale_config(n, plan.rounds).to_dict(),
            "population": {"eds": n, "tasks": tasks_for(n)},
        }
        for n in plan.eds
    }
    out.update(provenance("scripts/bench_scale.py", argv, None, **tables))
    write_json(args.json, out)
    for goal, check in out["goals"].items():
        print(f"{'PASS' if check['met'] else 'MISS'}  {goal}: {check['value']}")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TbcimError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
