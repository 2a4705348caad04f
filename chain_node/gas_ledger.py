"""Gas ledger: gasUsed of every receipt, by contract, function, sender role and round.

Later stages read g_e (32), the mean gas an ED spends per FL round on the aggregator, from these
measurements.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tbcim.errors import ConfigError
from tbcim.results import write_json

#: The contract whose ED rounds define g_e.
AGGREGATOR = "FLAggregator"


@dataclass(frozen=True)
class GasEntry:
    """One mined transaction's receipt."""

    contract: str
    function: str
    role: str  # "requester", "es" or "ed"
    round: int | None
    sender: str
    gas_used: int
    tx_hash: str
    block: int
    producer: str


class GasLedger:
    """Append-only record of receipts with summaries per ``Contract.function``."""

    def __init__(self, entries: list[GasEntry] | None = None) -> None:
        self.entries: list[GasEntry] = list(entries or [])

    def record(self, entry: GasEntry) -> None:
        self.entries.append(entry)

    def select(self, *, role: str | None = None, function: str | None = None) -> list[GasEntry]:
        return [
            e
            for e in self.entries
            if (role is None or e.role == role) and (function is None or e.function == function)
        ]

    def summary(self) -> dict[str, dict[str, float]]:
        """``"Contract.function"`` → calls, total, mean, min, max gasUsed."""
        groups: dict[str, list[int]] = {}
        for e in self.entries:
            groups.setdefault(f"{e.contract}.{e.function}", []).append(e.gas_used)
        return {
            key: {
                "calls": len(gas),
                "total": int(sum(gas)),
                "mean": float(np.mean(gas)),
                "min": int(min(gas)),
                "max": int(max(gas)),
            }
            for key, gas in sorted(groups.items())
        }

    def ed_round_gas(self, contract: str = AGGREGATOR) -> dict[tuple[str, int], int]:
        """Gas each ED spent in each FL round on ``contract`` (commitment and every chunk)."""
        totals: dict[tuple[str, int], int] = {}
        for e in self.entries:
            if e.role == "ed" and e.contract == contract and e.round is not None:
                key = (e.sender, e.round)
                totals[key] = totals.get(key, 0) + e.gas_used
        return totals

    def g_e(self, contract: str = AGGREGATOR) -> float:
        """The g_e of (32): the mean gas an ED spends per FL round on the aggregator, i.e. its
        transactions on ``contract`` summed per (ED, round) and averaged over those pairs.
        Other ED transactions (withdrawals from the market) are not FL rounds and not counted."""
        per_round = self.ed_round_gas(contract)
        if not per_round:
            raise ConfigError(
                "gas_ledger", f"no ED round on {contract} recorded, so g_e is unknown"
            )
        return float(np.mean(list(per_round.values())))

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"entries": [asdict(e) for e in self.entries]}
        if self.ed_round_gas():
            payload["g_e"] = self.g_e()
        return payload

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> GasLedger:
        data = _read(path)
        if "entries" not in data:
            raise ConfigError(str(path), "has no 'entries' list of gas receipts")
        return cls([GasEntry(**e) for e in data["entries"]])


def _read(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise ConfigError(str(path), "gas ledger file not found") from err
    except json.JSONDecodeError as err:
        raise ConfigError(str(path), f"not valid JSON ({err.msg})") from err
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a JSON object")
    return data


def read_g_e(path: str | Path) -> float:
    """g_e from a deploy/run report (top-level ``g_e``) or a saved ledger (its ED entries)."""
    data = _read(path)
    if "g_e" in data:
        value = data["g_e"]
        if not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
            raise ConfigError(f"{path}: g_e", f"must be a positive number, got {value!r}")
        return float(value)
    if "entries" in data:
        return GasLedger.load(path).g_e()
    raise ConfigError(str(path), "holds neither 'g_e' nor gas ledger 'entries'")
