"""Writing results: JSON, CSV, PNG and torch files, each written atomically (temp file, then
rename) by the one writer :func:`write_bytes`.

A run that fails half-way never leaves a truncated result behind. Part of the base layer: imports
nothing from the project; matplotlib and torch are imported only by the writers that need them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temp file in the same folder, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def machine_label() -> str:
    """The processor (or architecture) and numpy version, for a result file's ``machine``."""
    return f"{platform.processor() or platform.machine()}, numpy {np.__version__}"


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (numpy arrays and scalars allowed)."""
    text = json.dumps(payload, indent=2, default=_to_jsonable, allow_nan=False)
    return write_bytes(path, (text + "\n").encode())


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write dict rows as CSV; the header is the union of keys in first-seen order."""
    rows = list(rows)
    fields: list[str] = []
    for row in rows:
        fields.extend(key for key in row if key not in fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()})
    return write_bytes(path, buffer.getvalue().encode())


def save_figure(fig: Any, path: str | Path, dpi: int = 130) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buffer.getvalue())


def save_torch(path: str | Path, payload: Any) -> Path:
    """``torch.save`` of ``payload`` (a model file or checkpoint), written atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes(path, buffer.getvalue())


def new_figure(*args: Any, **kwargs: Any) -> Any:
    """``plt.subplots`` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def plot_mean(ax: Any, xs: Any, rows: Sequence[Mapping[str, Any]], key: str, **kwargs: Any) -> Any:
    """Draw ``row[key]`` of ``rows`` against ``xs`` and return the line. Rows merged over several
    seeds (:func:`tbcim.seeding.rows_over_seeds`) hold a ``<key>_std``: the line is then the mean
    and a band of ±1 sample std over the seeds is shaded in its colour."""
    line = ax.plot(xs, [row[key] for row in rows], **kwargs)[0]
    if rows and f"{key}_std" in rows[0]:
        mean = np.array([row[key] for row in rows], dtype=float)
        std = np.array([row[f"{key}_std"] for row in rows], dtype=float)
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    return line
