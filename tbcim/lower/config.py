"""Configuration of `tbcim pricing`: TOML or JSON, validated completely before any work starts.

Top-level tables (all optional; see docs/pricing.md for every key and default):

* ``[scenario]``  the random-market generator (:class:`ScenarioConfig` fields)
* ``[market]``    constants of (29)–(37) (:class:`MarketParams`)
* ``[quality]``   a1…a5 of (27)–(28) (:class:`QualityParams`)
* ``[selection]`` Algorithm 2's rule (:class:`SelectionRule`)
* ``[task] reference = [...]`` and ``[[servers]]`` with ``[[servers.eds]]``: an explicit market
  instead of a random one. Each ED gives ``data_size`` and ``labels`` (a label distribution), or
  ``label_counts`` (then d_i is their sum), and its cost parameters gamma, beta, power, rate, phi.

Unknown keys and bad values raise :class:`ConfigError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tbcim.configfile import check_table, dataclass_from_table, read_config
from tbcim.errors import ConfigError
from tbcim.lower.costs import ED_FIELDS, EDArrays, MarketParams, make_ed_arrays
from tbcim.lower.emd import SelectionRule, emd, emd_from_counts
from tbcim.lower.quality import QualityParams
from tbcim.lower.scenario import ScenarioConfig

ED_COST_KEYS = ("gamma", "beta", "power", "rate", "phi")
ED_KEYS = ("data_size", "labels", "label_counts", *ED_COST_KEYS)
TOP_KEYS = ("scenario", "market", "quality", "selection", "task", "servers")


@dataclass(frozen=True)
class PricingConfig:
    """A validated pricing configuration; ``eds`` is set for an explicit market."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    reference: NDArray[np.float64] | None = None
    eds: EDArrays | None = None


def load_config(path: str | Path | None) -> PricingConfig:
    """Read and validate a TOML (``.toml``) or JSON (``.json``) file; ``None`` gives the defaults.

    The file is read by the shared :func:`tbcim.configfile.read_config`.
    """
    if path is None:
        return PricingConfig()
    return parse_config(read_config(path))


def parse_config(raw: Any) -> PricingConfig:
    """Validate a parsed configuration mapping."""
    table = check_table(raw, "", TOP_KEYS)
    scenario = _scenario(table)
    if "servers" not in table:
        if "task" in table:
            raise ConfigError("task", "a task reference needs an explicit [[servers]] list")
        return PricingConfig(scenario=scenario)
    task = check_table(table.get("task"), "task", ("reference",))
    if "reference" not in task:
        raise ConfigError("task.reference", "an explicit market needs the task's distribution")
    reference = _float_list(task["reference"], "task.reference")
    emd(reference, reference)  # validates the reference on its own
    eds = _explicit_eds(table["servers"], reference)
    return PricingConfig(scenario=scenario, reference=reference, eds=eds)


def _scenario(table: Mapping[str, Any]) -> ScenarioConfig:
    market = dataclass_from_table(MarketParams, table.get("market"), "market")
    quality = dataclass_from_table(QualityParams, table.get("quality"), "quality")
    selection = dataclass_from_table(SelectionRule, table.get("selection"), "selection")
    return dataclass_from_table(
        ScenarioConfig,
        table.get("scenario"),
        "scenario",
        market=market,
        quality=quality,
        selection=selection,
    )


def _float_list(value: Any, name: str) -> NDArray[np.float64]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(name, "must be a list of numbers")
    return np.asarray(value, dtype=np.float64)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}")
    if value <= 0:
        what = "data size" if name.endswith("data_size") else "cost parameter"
        raise ConfigError(name, f"a {what} must be positive, got {value!r}")
    return float(value)


def _explicit_eds(raw: Any, reference: NDArray[np.float64]) -> EDArrays:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("servers", "must be a non-empty list of ESs")
    rows: list[list[dict[str, float]]] = []
    for s, server in enumerate(raw):
        table = check_table(server, f"servers[{s}]", ("eds",))
        ed_list = table.get("eds")
        if not isinstance(ed_list, list) or not ed_list:
            raise ConfigError(f"servers[{s}].eds", "an ES needs a non-empty set of candidate EDs")
        rows.append(
            [_explicit_ed(ed, f"servers[{s}].eds[{n}]", reference) for n, ed in enumerate(ed_list)]
        )
    width = max(len(r) for r in rows)
    present = np.array([[n < len(r) for n in range(width)] for r in rows])
    columns = {
        key: np.array([[r[n][key] if n < len(r) else 1.0 for n in range(width)] for r in rows])
        for key in ED_FIELDS
    }
    return make_ed_arrays(present, **columns)


def _explicit_ed(raw: Any, name: str, reference: NDArray[np.float64]) -> dict[str, float]:
    ed = check_table(raw, name, ED_KEYS)
    for key in ED_COST_KEYS:
        if key not in ed:
            raise ConfigError(f"{name}.{key}", "missing")
    values = {key: _number(ed[key], f"{name}.{key}") for key in ED_COST_KEYS}
    if ("labels" in ed) == ("label_counts" in ed):
        raise ConfigError(f"{name}.labels", "give exactly one of 'labels' and 'label_counts'")
    if "label_counts" in ed:
        counts = _float_list(ed["label_counts"], f"{name}.label_counts")
        values["theta"] = float(emd_from_counts(counts, reference, f"{name}.label_counts"))
        size = float(counts.sum())
        if "data_size" in ed and _number(ed["data_size"], f"{name}.data_size") != size:
            raise ConfigError(f"{name}.data_size", f"differs from the label counts' sum {size}")
        values["data_size"] = size
    else:
        if "data_size" not in ed:
            raise ConfigError(f"{name}.data_size", "missing")
        values["data_size"] = _number(ed["data_size"], f"{name}.data_size")
        labels = _float_list(ed["labels"], f"{name}.labels")
        values["theta"] = float(emd(labels, reference, f"{name}.labels"))
    return values
