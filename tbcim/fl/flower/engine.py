"""Run an :class:`~tbcim.fl.onchain.OnChainFL` task's rounds on Flower's simulation runtime
(issue 13; TBCIM section II-A, Fig. 3, with the EDs as Ray workers).

:func:`run_flower_rounds` gives the EDs their own keys (funded by the requester, registered as
the task's workers before the aggregator is used), builds the ``ServerApp``
(:mod:`tbcim.fl.flower.server_app`) and runs it with the ``ClientApp``
(:mod:`tbcim.fl.flower.client_app`) through ``flwr.simulation.run_simulation`` on the Ray
backend. The chain must be a JSON-RPC node: Ray workers are other processes and cannot see an
embedded chain.

Ray is started once per :func:`ray_session` (``workers`` CPUs: that many EDs train at once) and
shut down when it ends; without an open session each run opens its own. Flower's Ray backend
shuts Ray down after every simulation; inside a session the engine swaps in a backend that
only stops its actors (:func:`_shared_ray`, written against ``flwr`` 1.42.0, the pinned
version), so a test session or a benchmark pays Ray's start-up once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from tbcim.errors import ConfigError, TbcimError
from tbcim.fl.flower.server_app import ChainRoundControl, FlowerEngineError, server_app
from tbcim.fl.flower.spec import ED_FUNDS_WEI, AggregatorSpec, RunSpec, ed_account
from tbcim.fl.onchain import ChainRound, Failure, OnChainFL

#: How long a pool waits for Ray to restart a worker process that died.
RESTART_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class FlowerOptions:
    """How the Flower engine runs.

    - ``workers``: CPUs Ray gets when the engine starts it (EDs that train at once);
    - ``cpus_per_ed``: CPUs each ED's worker reserves (Flower's ``client_resources``);
    - ``reply_timeout_s``: how long a round phase waits for the EDs' replies before it goes on
      without the missing ones; ``start_timeout_s``: how long the first message waits before
      the runtime counts as not started;
    - ``kill``: fault injection, ED → FL round in which its worker process exits mid-round.
    """

    workers: int = 2
    cpus_per_ed: float = 1.0
    reply_timeout_s: float = 600.0
    start_timeout_s: float = 120.0
    kill: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or self.workers < 1:
            raise ConfigError("--workers", f"must be a positive integer, got {self.workers!r}")
        if not 0 < self.cpus_per_ed <= self.workers:
            raise ConfigError(
                "cpus_per_ed", f"must lie in (0, workers = {self.workers}], got {self.cpus_per_ed}"
            )
        for name in ("reply_timeout_s", "start_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be positive, got {getattr(self, name)}")


def flower_devices(seed: int, n_eds: int) -> list[str]:
    """The addresses of the EDs' own keys (:func:`~tbcim.fl.flower.spec.ed_account`), by ED."""
    return [ed_account(seed, ed).address for ed in range(n_eds)]


def check_flower_config(attack: str) -> None:
    """What the Flower engine cannot run: the ``copy`` attack reads its peers' honest updates
    of the previous round from the in-process task, which a worker process does not have."""
    if attack == "copy":
        raise ConfigError(
            "fl.attack",
            "the copy attack reads other EDs' updates from the in-process task; the Flower "
            "engine runs each ED in its own worker: use --engine local",
        )


@contextlib.contextmanager
def ray_session(workers: int) -> Iterator[None]:
    """Ray on this machine with ``workers`` CPUs for the block (kept across Flower runs); a
    session already open is reused. A start failure raises :class:`FlowerEngineError`."""
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    except Exception as err:  # Ray raises many types; all mean "no runtime"
        raise FlowerEngineError(f"Ray could not start: {type(err).__name__}: {err}") from err
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _shared_ray() -> Iterator[None]:
    """Flower's Ray backend with two changes (the simulation runtime looks the class up in
    this module when it starts):

    - ``terminate`` stops the actors but not Ray (see the module docstring);
    - an actor whose message failed (its worker process died) goes back to the pool only once
      Ray has restarted it. Flower puts it back at once, and every message sent to it while it
      restarts fails too: one dead ED would take others out of the round.
    """
    import ray
    from flwr.server.superlink.fleet.vce.backend import raybackend
    from flwr.simulation.ray_transport.ray_actor import BasicActorPool, ClientAppActor

    class RestartAwarePool(BasicActorPool):  # type: ignore[misc]
        def fetch_result_and_return_actor_to_pool(self, future: Any) -> Any:
            _, out_message, context = ray.get(future)
            BasicActorPool.add_actor_back_to_pool(self, future)
            return out_message, context

        def add_actor_back_to_pool(self, future: Any) -> None:
            """Only after a failed message (the success path is above)."""
            actor: Any = self._future_to_actor[future]
            deadline = time.monotonic() + RESTART_TIMEOUT_S
            while time.monotonic() < deadline:
                try:
                    ray.get(actor.__ray_ready__.remote(), timeout=RESTART_TIMEOUT_S)
                    break
                except Exception:  # restarting: Ray refuses the call until it is back
                    time.sleep(0.2)
            BasicActorPool.add_actor_back_to_pool(self, future)

    original = raybackend.RayBackend

    class SharedRayBackend(original):  # type: ignore[misc, valid-type]
        def build(self, app_fn: Any) -> None:
            self.pool = RestartAwarePool(ClientAppActor, self.client_resources, self.actor_kwargs)
            self.pool.add_actors_to_pool(self.pool.actors_capacity)
            self.app_fn = app_fn

        def terminate(self) -> None:
            if self.pool:
                self.pool.terminate_all_actors()

    raybackend.RayBackend = SharedRayBackend  # type: ignore[misc]
    try:
        yield
    finally:
        raybackend.RayBackend = original  # type: ignore[misc]


@contextlib.contextmanager
def _one_pass_delivery() -> Iterator[None]:
    """Flower's simulation runtime hands the SuperNodes' messages to the workers from a thread
    that, every 0.1 s, asks its in-memory LinkState for each node's next message, and each ask
    checks and scans every stored message: nodes × messages per sweep (``flwr`` 1.42.0,
    ``vce_api.add_messages_to_queue`` and ``InMemoryLinkState.get_message_ins``). With 1,000
    EDs that thread alone kept a core busy while a task's 143 messages were out. This
    replacement checks the stored messages once per sweep (their time to live, their
    federation: ``_check_stored_messages``) and finds every node's next undelivered message in
    one pass under the state's lock, still one message per node per sweep, marked delivered
    as Flower marks them. Another LinkState keeps Flower's own thread."""
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState
    from flwr.supercore.date import now

    original = vce_api.add_messages_to_queue

    def add_messages_to_queue(state: Any, queue: Any, nodes_mapping: Any, f_stop: Any) -> None:
        if not isinstance(state, InMemoryLinkState):
            original(state, queue, nodes_mapping, f_stop)
            return
        nodes = set(nodes_mapping)
        while not f_stop.is_set():
            with state.lock:
                state._check_stored_messages(set(state.message_ins_store))
                due: dict[int, Any] = {}
                for message in state.message_ins_store.values():
                    meta = message.metadata
                    if meta.delivered_at == "" and meta.dst_node_id in nodes:
                        due.setdefault(meta.dst_node_id, message)
                delivered_at = now().isoformat()
                for message in due.values():
                    message.metadata.delivered_at = delivered_at
            for message in due.values():
                queue.put(message)
            f_stop.wait(0.1)

    vce_api.add_messages_to_queue = add_messages_to_queue
    try:
        yield
    finally:
        vce_api.add_messages_to_queue = original


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def run_flower_rounds(
    fl: OnChainFL,
    rounds: int,
    failures: Sequence[Failure] = (),
    on_round: Callable[[ChainRound], None] | None = None,
    options: FlowerOptions | None = None,
) -> list[ChainRound]:
    """``rounds`` FL rounds of ``fl`` with the EDs as Flower clients (see the module
    docstring). ``fl`` must have been built on a JSON-RPC node with the EDs' own addresses
    (:func:`flower_devices`) as its device accounts; they are funded here."""
    each = None if on_round is None else (lambda records: on_round(records[0]))
    return [records[0] for records in run_flower_tasks([fl], rounds, failures, each, options)]


def run_flower_tasks(
    tasks: Sequence[OnChainFL],
    rounds: int,
    failures: Sequence[Failure] = (),
    on_round: Callable[[list[ChainRound]], None] | None = None,
    options: FlowerOptions | None = None,
) -> list[list[ChainRound]]:
    """:func:`run_flower_rounds` for several aggregator tasks in one Flower run: one population
    of EDs (one FL task's data and keys) shared out over ``tasks``, each its own aggregator on
    the same node with disjoint registered EDs. A population larger than one aggregator takes
    per round (:func:`tbcim.blockchain.aggregator.fits_limits`) runs this way; in each FL round
    the tasks' rounds run one after the other. Returns, per FL round, a record per task."""
    from flwr.simulation import run_simulation

    from tbcim.fl.flower.client_app import app as client_app

    options = options or FlowerOptions()
    fl = _check_tasks(tasks)
    task_config = getattr(fl.task, "config", None)
    if task_config is None:
        raise ConfigError("task", "the Flower engine rebuilds the task from its FLConfig")
    check_flower_config(task_config.attack)
    rpc_url = fl.node.rpc_url
    if rpc_url is None:
        raise ConfigError(
            "--rpc-url",
            "the Flower engine's EDs run in other processes and need a JSON-RPC node "
            "(anvil started by the run, or --rpc-url), not the embedded chain",
        )
    expected = flower_devices(task_config.seed, len(fl.devices))
    if fl.devices != expected:
        raise ConfigError("devices", "the task's ED accounts are not the EDs' own keys")
    # Fund the EDs that have not been (a market funds its EDs before its calibration).
    accounts = [fl.devices[ed] for t in tasks for ed in t.registered]
    balance = fl.node.w3.eth.get_balance
    unfunded = [a for a in accounts if balance(to_checksum_address(a)) < ED_FUNDS_WEI // 2]
    if unfunded:
        fl.node.fund(unfunded, ED_FUNDS_WEI)
    spec = RunSpec(
        rpc_url=rpc_url,
        tasks=[
            AggregatorSpec(
                contract=str(t.client.contract.address),
                since_block=t.client.since_block,
                config=dataclasses.asdict(t.client.config),
                servers=list(t.servers),
            )
            for t in tasks
        ],
        fl=dataclasses.asdict(task_config),
        n_eds=len(fl.devices),
        requester=fl.node.requester,
        kill={int(ed): int(r) for ed, r in options.kill.items()},
    )
    control = ChainRoundControl(list(tasks), spec, options.reply_timeout_s, options.start_timeout_s)
    records: list[list[ChainRound]] = []

    def record(r: list[ChainRound]) -> None:
        records.append(r)
        if on_round is not None:
            on_round(r)

    def down(r: int) -> set[int]:
        return set().union(*(f.down(r) for f in failures)) if failures else set()

    backend: dict[str, Any] = {
        "client_resources": {
            "num_cpus": options.cpus_per_ed,
            "num_gpus": 0.0,
            # A worker process that dies is restarted; the message it was handling fails, so
            # its ED misses the round (no retry: it may have sent a transaction already).
            "max_restarts": -1,
        },
    }
    app = server_app(control, rounds, down, record)
    with ray_session(options.workers), _shared_ray(), _one_pass_delivery():
        try:
            run_simulation(app, client_app, len(fl.devices), backend_config=backend)
        except TbcimError:
            raise  # the ServerApp's own errors (the chain, a config) keep their message
        except Exception as err:
            cause = _root_cause(err)
            if isinstance(cause, TbcimError):
                raise cause from err
            raise FlowerEngineError(
                f"the Flower simulation failed: {type(cause).__name__}: {cause}"
            ) from err
    if len(records) != rounds:
        raise FlowerEngineError(
            f"the Flower simulation ended after {len(records)} of {rounds} rounds"
        )
    return records


def _check_tasks(tasks: Sequence[OnChainFL]) -> OnChainFL:
    """The first task, once ``tasks`` are known to share one node, one population of EDs
    (the same task data and accounts) and no registered ED."""
    if not tasks:
        raise ConfigError("tasks", "name at least one aggregator task")
    first = tasks[0]
    for k, t in enumerate(tasks[1:], start=1):
        if t.node is not first.node or t.task is not first.task or t.devices != first.devices:
            raise ConfigError("tasks", f"task {k} does not share task 0's node, EDs and data")
    seen: set[int] = set()
    for k, t in enumerate(tasks):
        shared = seen.intersection(t.registered)
        if shared:
            raise ConfigError(
                "tasks", f"EDs {sorted(shared)} are registered in task {k} and an earlier one"
            )
        seen.update(t.registered)
    return first
