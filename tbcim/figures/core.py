"""What every figure shares: its spec, the context it runs in, and the claim it checks.

A figure is a function ``make(ctx) -> Claim``. It runs what it needs from fresh (or takes a run
another figure of the same invocation already made, through ``ctx.once``), writes
``<name>.png`` and ``<name>.csv`` into ``ctx.out``, and returns the figure's :class:`Claim`: the
paper's words, whether our run reproduces them, and the numbers that decide it. A claim with
several parts is reproduced only if every part is; ``measured`` names each part's verdict. A
claim that does not reproduce is reported as such, with its numbers: nothing is tuned to it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tbcim.seeding import mean_std

T = TypeVar("T")
R = TypeVar("R")

TBCIM = "TBCIM"
SECOND = "FL service market (reverse auction)"


@dataclass(frozen=True)
class Claim:
    """One entry of ``claims.json``."""

    paper: str  # TBCIM or SECOND
    figure: str  # the paper's label: "Fig. 5", "Table II"
    claim: str  # the paper's claim, in its words or close to them
    reproduced: bool
    measured: dict[str, Any]  # the numbers that decide ``reproduced``
    command: str  # the command that regenerates the figure
    conditions: str = ""  # what the result depends on (settings, attackers, scale)
    summary: str = ""  # the deciding numbers in one line, for the README's table

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        verdict = "REPRODUCED" if self.reproduced else "NOT reproduced"
        numbers = json.dumps(self.measured, default=_short, separators=(", ", ": "))
        return f"{self.paper} {self.figure}: {verdict}: {self.claim}\n    measured {numbers}"


def _short(value: Any) -> Any:
    return str(value)


@dataclass
class FigureContext:
    """Where a figure writes, how big its runs are, and the runs already made (by key)."""

    out: Path
    quick: bool
    seeds: tuple[int, ...]
    jobs: int = 1
    log: Callable[[str], None] = print
    cached: dict[str, Any] = field(default_factory=dict)
    spec: FigureSpec | None = None  # the figure being made (set by the runner)

    @property
    def name(self) -> str:
        if self.spec is None:
            raise RuntimeError("no figure is being made")
        return self.spec.name

    def path(self, suffix: str) -> Path:
        """``DIR/<figure name><suffix>``: ``ctx.path(".png")``, ``ctx.path("-curves.csv")``."""
        return self.out / f"{self.name}{suffix}"

    def claim(
        self,
        claim: str,
        reproduced: bool,
        measured: dict[str, Any],
        conditions: str = "",
        summary: str = "",
    ) -> Claim:
        """The current figure's :class:`Claim` (paper, figure and command filled in)."""
        assert self.spec is not None
        return Claim(
            self.spec.paper,
            self.spec.figure,
            claim,
            bool(reproduced),
            measured,
            self.command(self.spec.name),
            conditions,
            summary,
        )

    def command(self, figure: str) -> str:
        """The command that regenerates ``figure`` as this invocation did."""
        parts = ["tbcim figures", f"--out {self.out}", f"--fig {figure}"]
        if self.quick:
            parts.append("--quick")
        parts.append("--seeds " + ",".join(str(s) for s in self.seeds))
        return " ".join(parts)

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()``'s result, computed once per invocation and shared between figures."""
        if key not in self.cached:
            self.cached[key] = make()
        return self.cached[key]


@dataclass(frozen=True)
class FigureSpec:
    """A figure of one of the papers and the function that remakes it (``module:function``,
    imported only when the figure runs, so listing the figures stays light)."""

    name: str  # the --fig name: "tbcim-fig5", "fsm-table2"
    paper: str
    figure: str  # "Fig. 5"
    title: str
    maker: str  # "tbcim.figures.fl_figures:fig5"

    def make(self, ctx: FigureContext) -> Claim:
        module, _, function = self.maker.partition(":")
        claim: Claim = getattr(importlib.import_module(module), function)(ctx)
        return claim


def in_processes(function: Callable[[T], R], jobs: Sequence[T], workers: int) -> list[R]:
    """``[function(job) for job in jobs]``, ``workers`` processes at a time (``function`` must be
    a module-level function: it is pickled)."""
    if workers == 1 or len(jobs) <= 1:
        return [function(job) for job in jobs]
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        return list(pool.map(function, jobs))


def stats(values: Sequence[float]) -> dict[str, float]:
    """``{"mean": ..., "std": ...}`` of one number over the seeds (sample std, as
    :func:`tbcim.seeding.mean_std`): how ``measured`` holds a per-seed number."""
    mean, std = mean_std(values)
    return {"mean": mean, "std": std}


def pm(stats: dict[str, float], digits: int = 3) -> str:
    """``{"mean": m, "std": s}`` as ``"m ± s"`` for a summary line."""
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"
