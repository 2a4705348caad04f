"""Run figures into a folder: a line per figure, ``claims.json`` kept up to date after each one.

``DIR/claims.json`` holds one entry per figure ever made in ``DIR``: a run of ``--fig X``
replaces X's entry and keeps the others. ``DIR/figures.json`` records, per figure, the command,
seeds, quick flag, seconds, date and machine of the run that made it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tbcim.errors import ConfigError
from tbcim.figures.core import Claim, FigureContext, FigureSpec
from tbcim.figures.registry import NAMES
from tbcim.results import machine_label, write_bytes, write_json

QUICK_SEEDS, FULL_SEEDS = (0, 1), (0, 1, 2)


def _load(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(
            str(path), f"is not valid JSON ({err}); remove it or pick another --out"
        ) from err


def check_out(out: Path) -> None:
    """``out`` is a folder (or absent), and any claims.json in it is one of ours."""
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder")
    claims = _load(out / "claims.json", [])
    if not isinstance(claims, list) or any(
        not isinstance(c, dict) or "figure" not in c for c in claims
    ):
        raise ConfigError("--out", f"{out}/claims.json is not a claims list")


def run_figures(
    figures: tuple[FigureSpec, ...],
    out: Path,
    quick: bool,
    seeds: tuple[int, ...] | None = None,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> list[Claim]:
    """Make ``figures`` in ``out``; returns their claims (also merged into claims.json)."""
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = seeds or (QUICK_SEEDS if quick else FULL_SEEDS)
    ctx = FigureContext(out=out, quick=quick, seeds=seeds, jobs=jobs, log=log)
    made: list[Claim] = []
    started = time.perf_counter()
    for i, spec in enumerate(figures, 1):
        log(f"[{i}/{len(figures)}] {spec.name}: {spec.paper} {spec.figure}, {spec.title}")
        t0 = time.perf_counter()
        ctx.spec = spec
        claim = spec.make(ctx)
        seconds = time.perf_counter() - t0
        made.append(claim)
        _record(out, spec, claim, ctx, seconds)
        log(f"[{i}/{len(figures)}] {spec.name} done in {seconds:.0f} s: {claim.line()}")
    total = time.perf_counter() - started
    log(
        f"{len(made)} figure(s) in {total / 60:.1f} min: "
        f"{sum(c.reproduced for c in made)} reproduced, {sum(not c.reproduced for c in made)} not; "
        f"{out / 'claims.json'}"
    )
    return made


def _record(out: Path, spec: FigureSpec, claim: Claim, ctx: FigureContext, seconds: float) -> None:
    """Merge the figure's claim into claims.json and its run into figures.json."""
    claims = {c["name"]: c for c in _load(out / "claims.json", []) if "name" in c}
    claims[spec.name] = {"name": spec.name, **claim.as_dict()}
    ordered = [claims[n] for n in NAMES if n in claims]
    write_json(out / "claims.json", ordered)
    write_bytes(out / "claims.md", claims_table(ordered).encode())
    runs = _load(out / "figures.json", {})
    runs[spec.name] = {
        "command": claim.command,
        "quick": ctx.quick,
        "seeds": list(ctx.seeds),
        "seconds": round(seconds, 1),
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine_label(),
    }
    write_json(out / "figures.json", {n: runs[n] for n in NAMES if n in runs})


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def claims_table(claims: list[dict[str, Any]]) -> str:
    """The claims as a Markdown table (``DIR/claims.md``; the README shows it verbatim)."""
    lines = [
        "| paper | figure | the paper's claim | reproduced | measured | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in claims:
        measured = c.get("summary") or json.dumps(c["measured"], separators=(", ", ": "))
        lines.append(
            f"| {_cell(c['paper'])} | {_cell(c['figure'])} | {_cell(c['claim'])} | "
            f"{'yes' if c['reproduced'] else '**no**'} | {_cell(measured)} | "
            f"`{_cell(c['command'])}` |"
        )
    return "\n".join(lines) + "\n"
