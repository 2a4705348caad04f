"""One seed drives every random choice of a run; a run over several seeds reports each seed's
values with their mean and sample standard deviation over the seeds."""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and (if the run uses it) torch; return a numpy Generator for the run.

    torch is seeded only when already imported, so runs that never touch it do not pay for
    importing it.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0.0 for a single seed) over seeds."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _same(a: Any, b: Any) -> bool:
    """Equal, or both NaN (a row's "no value")."""
    return bool(a == b) or (_is_number(a) and _is_number(b) and np.isnan(a) and np.isnan(b))


def rows_over_seeds(
    per_seed: Mapping[int, Sequence[Mapping[str, Any]]], values: Sequence[str]
) -> list[dict[str, Any]]:
    """Row i of every seed merged into one row (the seeds' rows must line up one to one).

    The fields not in ``values`` must be equal on every seed and are kept. Each field of
    ``values`` becomes its mean over the seeds (same name), its sample std (``<name>_std``, right
    after it) and, at the end of the row, each seed's value (``<name>_seed<s>``). One seed's rows
    are returned as they are (a single-seed run's output does not change).
    """
    seeds = list(per_seed)
    tables = [per_seed[s] for s in seeds]
    if not tables or any(len(table) != len(tables[0]) for table in tables):
        raise ValueError("every seed needs the same number of rows")
    if len(tables) == 1:
        return [dict(row) for row in tables[0]]
    merged = []
    for rows in zip(*tables, strict=True):
        row: dict[str, Any] = {}
        for key, value in rows[0].items():
            if key in values:
                row[key], row[f"{key}_std"] = mean_std([r[key] for r in rows])
            elif any(not _same(r[key], value) for r in rows[1:]):
                raise ValueError(f"{key} differs between seeds in one row: {rows!r}")
            else:
                row[key] = value
        for key in values:
            row.update({f"{key}_seed{s}": r[key] for s, r in zip(seeds, rows, strict=True)})
        merged.append(row)
    return merged


def stack_seeds(per_seed: Mapping[int, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Every seed's rows one after another, each led by a ``seed`` field; one seed's rows as they
    are. For rows that do not line up between seeds (each seed draws its own market)."""
    if len(per_seed) == 1:
        return [dict(row) for rows in per_seed.values() for row in rows]
    return [{"seed": seed, **row} for seed, rows in per_seed.items() for row in rows]


def numbers_over_seeds(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{"mean": ..., "std": ...}`` of every number field (not bools, not strings) of the
    per-seed ``records``, one value per field (sample std as in :func:`mean_std`)."""
    keys = [k for k, v in records[0].items() if _is_number(v)]
    stats = {key: mean_std([r[key] for r in records]) for key in keys}
    return {
        "mean": {key: mean for key, (mean, _) in stats.items()},
        "std": {key: std for key, (_, std) in stats.items()},
    }
