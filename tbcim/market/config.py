"""The market's config: a ``[market]`` table over the training tables of :mod:`.training`.

A market run (``tbcim market run``) serves ``market.tasks`` consecutive tasks (TBCIM section II-A,
steps 1–9). Its TOML file holds:

- ``[market]`` (:class:`MarketTerms`): the task count, the mechanism (any name of
  :data:`tbcim.auction.registry.MECHANISM_NAMES`; learned ones read ``model``), the reward held
  in escrow, the target accuracy, the gas price p_g of (32) and whether the ESs bear the
  blockchain cost at all;
- ``[fl]``, ``[chain]``, ``[failure]``, ``[selection]`` as for :mod:`tbcim.market.training`
  (``chain.servers`` is the number of candidate ESs; the strategy must be ``ours``: the bids are
  the Stackelberg costs).

Everything is checked before any work starts, and a mistake is a :class:`ConfigError` that names
its dotted key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tbcim.configfile import check_table, dataclass_from_table, read_config
from tbcim.errors import ConfigError
from tbcim.lower.costs import MarketParams
from tbcim.lower.scenario import ScenarioConfig
from tbcim.market.training import TrainingConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Wei per money unit of U_d (1 unit = 1 ether).
WEI_PER_UNIT = 10**18


@dataclass(frozen=True)
class MarketTerms:
    """The ``[market]`` table.

    ``gas_unit`` normalises (32) (``docs/market.md``, "The gas unit"): with full updates in
    calldata, an ED's round costs 4e5–7e5 gas on this chain (5–9x the paper's g_e = 7.68e4), so
    the market counts gas in units of 1e5 where the lower level's defaults use 1e4; the
    per-worker blockchain cost at p_g = 2e-2 is then the same order as in the paper's Fig. 8.
    """

    tasks: int = 2
    mechanism: str = "ranet-exact"
    model: str | None = None  # learned mechanisms: default results/<mechanism>/tbcim-<S>.pt
    reward: float = 0.5  # escrow per task, money units (1 unit = 1 ether)
    target_accuracy: float = 0.7
    gas_price: float = 2e-2  # p_g of (32)
    gas_unit: float = 1e5
    blockchain_cost: bool = True
    calibration_eds: int = 4  # EDs of the synthetic round that measures g_e before task 1
    phase_blocks: int = 8  # blocks of the commit, reveal, award and accept windows

    def __post_init__(self) -> None:
        from tbcim.auction.registry import MECHANISM_NAMES

        for name in ("tasks", "calibration_eds", "phase_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or value < 1:
                raise ConfigError(f"market.{name}", f"must be a positive integer, got {value!r}")
        if self.mechanism not in MECHANISM_NAMES:
            raise ConfigError(
                "market.mechanism",
                f"unknown mechanism {self.mechanism!r}; choose one of {MECHANISM_NAMES}",
            )
        for name in ("reward", "gas_price", "gas_unit"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f"market.{name}", f"must be positive and finite, got {value}")
        if not 0.0 <= self.target_accuracy <= 1.0:
            raise ConfigError(
                "market.target_accuracy", f"must lie in [0, 1], got {self.target_accuracy}"
            )

    @property
    def reward_wei(self) -> int:
        return round(self.reward * WEI_PER_UNIT)


@dataclass(frozen=True)
class MarketConfig:
    """``[market]`` plus the training tables; :meth:`load` validates the whole file."""

    terms: MarketTerms = field(default_factory=MarketTerms)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.training.selection.strategy != "ours":
            raise ConfigError(
                "selection.strategy",
                "a market's ESs bid their Stackelberg costs: the strategy must be 'ours'",
            )

    @property
    def servers(self) -> int:
        return self.training.run.chain.servers

    @property
    def seed(self) -> int:
        return self.training.run.fl.seed

    def scenario(self) -> ScenarioConfig:
        """The lower level's constants with this market's gas price and gas unit."""
        t = self.terms
        market = dataclasses.replace(MarketParams(), gas_price=t.gas_price, gas_unit=t.gas_unit)
        return ScenarioConfig(n_servers=self.servers, market=market)

    def model_path(self) -> Path | None:
        """The learned mechanism's model file (None for an analytic mechanism)."""
        from tbcim.auction.registry import LEARNED

        t = self.terms
        if t.mechanism not in LEARNED:
            return None
        path = Path(t.model or f"results/{t.mechanism}/tbcim-{self.servers}.pt")
        return path if path.is_absolute() or path.exists() else REPO_ROOT / path

    @classmethod
    def from_dict(cls, raw: Any) -> MarketConfig:
        top = check_table(raw, "", ("market", "fl", "chain", "failure", "selection"))
        terms = dataclass_from_table(MarketTerms, top.get("market") or {}, "market")
        training = TrainingConfig.from_dict({k: v for k, v in top.items() if k != "market"})
        return cls(terms, training)

    @classmethod
    def load(cls, path: str | Path | None) -> MarketConfig:
        return cls() if path is None else cls.from_dict(read_config(path, "--config"))

    def to_dict(self) -> dict[str, Any]:
        return {"market": dataclasses.asdict(self.terms), **self.training.to_dict()}
