"""The README's claims table is `results/figures/claims.md`, rendered from the committed
`claims.json` of a fresh `tbcim figures --quick` run, and every figure it names is shown."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tbcim.figures.registry import NAMES
from tbcim.figures.runner import claims_table

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "results" / "figures"
BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"


def test_the_committed_quick_run_covers_every_figure() -> None:
    claims = json.loads((FIGURES / "claims.json").read_text())
    assert [c["name"] for c in claims] == list(NAMES)
    runs = json.loads((FIGURES / "figures.json").read_text())
    assert all(runs[n]["quick"] for n in NAMES)
    for name in NAMES:
        assert (FIGURES / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (FIGURES / f"{name}.csv").stat().st_size > 0


def test_the_readme_table_is_the_committed_claims() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    claims = json.loads((FIGURES / "claims.json").read_text())
    assert block == claims_table(claims).strip()
    assert block == (FIGURES / "claims.md").read_text().strip()


def test_the_readme_shows_every_figure() -> None:
    readme = (REPO / "README.md").read_text()
    shown = set(re.findall(r"results/figures/([\w-]+)\.png", readme))
    assert shown == set(NAMES)
