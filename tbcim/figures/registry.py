"""Every figure ``tbcim figures`` remakes, in the papers' order, by its ``--fig`` name."""

from __future__ import annotations

from tbcim.errors import ConfigError
from tbcim.figures.core import SECOND, TBCIM, FigureSpec

_FL = "tbcim.figures.fl_figures"
_MARKET = "tbcim.figures.market_figures"
_AUCTION = "tbcim.figures.auction_figures"
_MATCHING = "tbcim.figures.matching_figures"

FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("tbcim-fig5", TBCIM, "Fig. 5", "accuracy, IID against non-IID", f"{_FL}:fig5"),
    FigureSpec(
        "tbcim-fig6",
        TBCIM,
        "Fig. 6",
        "buyer utility and regret over RANet training, 3, 5 and 10 ESs",
        f"{_AUCTION}:fig6",
    ),
    FigureSpec(
        "tbcim-fig7",
        TBCIM,
        "Fig. 7",
        "win probability and utility against the bid",
        f"{_AUCTION}:fig7",
    ),
    FigureSpec(
        "tbcim-fig8",
        TBCIM,
        "Fig. 8",
        "ESs selected with and without the blockchain cost, 3, 5 and 10 ESs",
        f"{_AUCTION}:fig8",
    ),
    FigureSpec(
        "tbcim-fig9",
        TBCIM,
        "Fig. 9",
        "ES average revenue at gas prices 1e-2, 2e-2, 4e-2 and without blockchain",
        f"{_MARKET}:fig9",
    ),
    FigureSpec(
        "tbcim-fig10",
        TBCIM,
        "Fig. 10",
        "accuracy over rounds at each gas price and without blockchain",
        f"{_MARKET}:fig10",
    ),
    FigureSpec(
        "tbcim-fig11", TBCIM, "Fig. 11", "accuracy of Ideal, Ours, Greedy and No-IM", f"{_FL}:fig11"
    ),
    FigureSpec(
        "tbcim-fig12", TBCIM, "Fig. 12", "accuracy with 20 % of the ESs down", f"{_FL}:fig12"
    ),
    FigureSpec(
        "fsm-table2", SECOND, "Table II", "running time of Opt and Subopt", f"{_MATCHING}:table2"
    ),
    FigureSpec(
        "fsm-fig3",
        SECOND,
        "Fig. 3",
        "revenue of Opt, Subopt and the baselines",
        f"{_MATCHING}:fig3",
    ),
    FigureSpec(
        "fsm-fig4", SECOND, "Fig. 4", "one market's winners and payments", f"{_MATCHING}:fig4"
    ),
    FigureSpec("fsm-table3", SECOND, "Table III", "the winners at 8/10/12", f"{_MATCHING}:table3"),
    FigureSpec(
        "fsm-fig5", SECOND, "Fig. 5", "truthfulness: utility against the bid", f"{_MATCHING}:fig5"
    ),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FIGURES)


def select(names: tuple[str, ...] | None) -> tuple[FigureSpec, ...]:
    """The figures named (all of them for None or empty), in the papers' order."""
    if not names:
        return FIGURES
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ConfigError("--fig", f"unknown figure(s) {unknown}; known: {', '.join(NAMES)}")
    return tuple(f for f in FIGURES if f.name in names)
