"""The ESs' round control as a Flower ``ServerApp`` (TBCIM section II-A, Fig. 3).

:class:`ChainRoundControl` is the strategy: per FL round it takes the failed ESs out of the
proof-of-stake election, has the first live ES open the round on chain, sends ``train.commit``
to the participating EDs (those of live ESs), produces the block(s) that include their
commitments (the elected ES's coinbase, as on the in-process engine), passes the commit window,
sends ``train.submit``, includes the submissions, waits for the deadline, and has the last live
ES aggregate on chain; the new model is read back from the chain
(:meth:`tbcim.fl.onchain.OnChainFL.close_round`). Replies carry transaction hashes and timings,
never an update: nothing is aggregated here.

It is not a ``flwr.serverapp.strategy.Strategy`` subclass: ``Strategy.start`` averages the
replies' ``ArrayRecord``s on the server, which is exactly what must not happen here.

An ED that does not answer (its worker process died, or the reply timed out) or answers with an
error is left out of the rest of the round, with the reason in ``ChainRound.rejected``
("DROPPED: ..."); the round closes without it and the next round addresses it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from tbcim.errors import TbcimError
from tbcim.fl.flower.spec import COMMIT, SUBMIT, WHOAMI, RunSpec
from tbcim.fl.onchain import ChainRound, OnChainFL, RoundStart

DROPPED = "DROPPED"


class FlowerEngineError(TbcimError):
    """The Flower simulation could not start or run; the message says why."""


@dataclass
class ChainRoundControl:
    """The round loop of the ``ServerApp`` over the aggregator tasks ``tasks`` (one
    :class:`~tbcim.fl.onchain.OnChainFL` each, disjoint EDs of one population; usually one).
    In each FL round the tasks' rounds run one after the other, task ``k``'s EDs addressed with
    ``task = k`` in their messages."""

    tasks: list[OnChainFL]
    spec: RunSpec
    reply_timeout_s: float
    start_timeout_s: float
    node_of: dict[int, int] = field(default_factory=dict)  # ED → Flower node id

    def discover(self, grid: Grid) -> None:
        """Ask every node which ED it is; no answer at all means the runtime did not start."""
        deadline = time.monotonic() + self.start_timeout_s
        node_ids = list(grid.get_node_ids())  # the runtime registers its nodes after we start
        while len(node_ids) < self.spec.n_eds and time.monotonic() < deadline:
            time.sleep(0.05)
            node_ids = list(grid.get_node_ids())
        replies = self._send(grid, WHOAMI, {}, node_ids, timeout=self.start_timeout_s)
        errors = []
        for reply in replies:
            if reply.has_error():
                errors.append(reply.error.reason)
            else:
                ed = int(reply.content["result"]["ed"])  # type: ignore[arg-type]
                self.node_of[ed] = reply.metadata.src_node_id
        registered = sorted(ed for fl in self.tasks for ed in fl.registered)
        missing = sorted(set(registered) - set(self.node_of))
        if len(missing) == len(registered):
            why = f"the first error: {errors[0]}" if errors else "see the log above"
            raise FlowerEngineError(
                f"no ED answered within {self.start_timeout_s:.0f} s: the Flower simulation "
                f"runtime did not start ({why})"
            )
        if missing:
            raise FlowerEngineError(f"EDs {missing} have no Flower node")

    def run_round(self, grid: Grid, round: int, down: Collection[int]) -> list[ChainRound]:
        """FL round ``round`` of every task, one after the other; a record per task."""
        return [self.run_task_round(grid, k, round, down) for k in range(len(self.tasks))]

    def run_task_round(
        self, grid: Grid, task: int, round: int, down: Collection[int]
    ) -> ChainRound:
        """One FL round of task ``task`` (see the module docstring)."""
        fl = self.tasks[task]
        live, participants = fl.begin_round(round, down)
        started = time.perf_counter()
        ledger_start = len(fl.node.ledger.entries)
        chain_round = fl.client.open_round(fl.servers[live[0]])
        rejected: dict[int, str] = {}
        config = {"round": round, "chain_round": chain_round, "task": task}
        phase = time.perf_counter()
        committed = self._phase(grid, COMMIT, participants, config, rejected)
        train_seconds = time.perf_counter() - phase
        window = fl.client.config.round_blocks
        info = fl.client.round_info(chain_round)
        fl.node.include(committed, role="ed", round=chain_round, max_blocks=window)
        fl.client.wait_until_after(int(info["commitDeadline"]))
        senders = [ed for ed in participants if ed not in rejected]
        submitted = self._phase(grid, SUBMIT, senders, config, rejected)
        fl.node.include(submitted, role="ed", round=chain_round, max_blocks=window)
        fl.client.wait_for_deadline(chain_round)
        ed_of = fl.ed_of()
        verdicts = {ed_of[d]: v for d, v in fl.client.verdicts(chain_round).items()}
        return fl.close_round(
            RoundStart(round, tuple(sorted(down)), live, tuple(participants)),
            chain_round,
            verdicts,
            rejected,
            train_seconds,
            started + train_seconds,  # chain time: the round's wall time less the training
            ledger_start,
        )

    def _phase(
        self,
        grid: Grid,
        kind: str,
        eds: list[int],
        config: dict[str, int],
        rejected: dict[int, str],
    ) -> list[str]:
        """Send ``kind`` with ``config`` (the round, the chain round, the task) to ``eds``; the
        transaction hashes they sent. EDs that fail or do not answer, and updates screened out,
        go to ``rejected`` with the reason."""
        nodes = [self.node_of[ed] for ed in eds]
        replies = self._send(grid, kind, config, nodes, timeout=self.reply_timeout_s)
        ed_of_node = {node: ed for ed, node in self.node_of.items()}
        answered: set[int] = set()
        hashes: list[str] = []
        for reply in sorted(replies, key=lambda m: ed_of_node[m.metadata.src_node_id]):
            ed = ed_of_node[reply.metadata.src_node_id]
            answered.add(ed)
            if reply.has_error():
                rejected[ed] = f"{DROPPED}: {reply.error.reason}"
                continue
            result = reply.content["result"]
            if result["rejected"]:
                rejected[ed] = str(result["rejected"])
            hashes.extend(h for h in str(result["tx"]).split(",") if h)
        for ed in eds:
            if ed not in answered:
                rejected[ed] = f"{DROPPED}: no reply to {kind} within {self.reply_timeout_s:.0f} s"
        return hashes

    def _send(
        self,
        grid: Grid,
        kind: str,
        config: dict[str, int],
        nodes: list[int],
        *,
        timeout: float,
    ) -> Iterable[Message]:
        spec = self.spec.to_json()
        messages = [
            Message(
                RecordDict({"run": ConfigRecord({"spec": spec, **config})}),
                dst_node_id=node,
                message_type=kind,
            )
            for node in nodes
        ]
        return grid.send_and_receive(messages, timeout=timeout) if messages else []


def server_app(
    control: ChainRoundControl,
    rounds: int,
    down: Callable[[int], set[int]],
    on_round: Callable[[list[ChainRound]], None],
) -> ServerApp:
    """The ``ServerApp``: discover the EDs, then ``rounds`` rounds with ESs ``down(r)`` failed,
    each round's records (one per task) passed to ``on_round``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        control.discover(grid)
        for r in range(rounds):
            on_round(control.run_round(grid, r, down(r)))

    return app
