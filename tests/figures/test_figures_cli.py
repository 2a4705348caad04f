"""`tbcim figures`: argument errors before any work, claims.json's merging and its schema, with a
registry of fake figures (the real figures' own tests are beside this file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tbcim.cli import main
from tbcim.figures import registry
from tbcim.figures.core import SECOND, TBCIM, Claim, FigureContext, FigureSpec, in_processes
from tbcim.figures.runner import run_figures

KEYS = {"paper", "figure", "claim", "reproduced", "measured", "command"}


def fake_a(ctx: FigureContext) -> Claim:
    ctx.path(".csv").write_text("x\n1\n")
    return ctx.claim("A holds", True, {"a": 1.0})


def fake_b(ctx: FigureContext) -> Claim:
    return ctx.claim("B holds", False, {"b": 2.0}, "b's conditions")


def fake_broken(ctx: FigureContext) -> Claim:
    raise RuntimeError("broken figure")


FAKES = (
    FigureSpec("fake-a", TBCIM, "Fig. 1", "a", f"{__name__}:fake_a"),
    FigureSpec("fake-b", SECOND, "Table I", "b", f"{__name__}:fake_b"),
    FigureSpec("fake-broken", TBCIM, "Fig. 2", "broken", f"{__name__}:fake_broken"),
)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    import tbcim.figures.runner as runner

    monkeypatch.setattr(registry, "FIGURES", FAKES)
    monkeypatch.setattr(registry, "NAMES", tuple(f.name for f in FAKES))
    monkeypatch.setattr(runner, "NAMES", tuple(f.name for f in FAKES))


def test_the_registry_names_every_figure_the_issue_lists() -> None:
    wanted = {(TBCIM, f"Fig. {n}") for n in range(5, 13)}
    wanted |= {(SECOND, f) for f in ("Table II", "Fig. 3", "Fig. 4", "Table III", "Fig. 5")}
    assert {(f.paper, f.figure) for f in registry.FIGURES} == wanted
    assert len(set(registry.NAMES)) == len(registry.NAMES)
    for spec in registry.FIGURES:  # every maker resolves to a function
        module, _, function = spec.maker.partition(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function))


def test_claims_json_has_one_entry_per_figure_and_runs_merge(fakes: None, tmp_path: Path) -> None:
    run_figures(registry.select(("fake-b",)), tmp_path, quick=True, log=lambda _: None)
    run_figures(registry.select(("fake-a",)), tmp_path, quick=True, log=lambda _: None)
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert [c["name"] for c in claims] == ["fake-a", "fake-b"]  # the registry's order
    assert all(c.keys() >= KEYS for c in claims)
    a, b = claims
    assert (a["reproduced"], a["measured"], a["paper"]) == (True, {"a": 1.0}, TBCIM)
    assert (b["reproduced"], b["conditions"], b["figure"]) == (False, "b's conditions", "Table I")
    assert a["command"] == f"tbcim figures --out {tmp_path} --fig fake-a --quick --seeds 0,1"
    runs = json.loads((tmp_path / "figures.json").read_text())
    assert set(runs) == {"fake-a", "fake-b"} and runs["fake-a"]["seeds"] == [0, 1]
    # a rerun replaces its own entry only
    run_figures(registry.select(("fake-a",)), tmp_path, False, (3,), log=lambda _: None)
    again = json.loads((tmp_path / "claims.json").read_text())
    assert again[1] == b and again[0]["command"].endswith("--fig fake-a --seeds 3")


def test_a_failing_figure_keeps_the_claims_already_made(fakes: None, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="broken figure"):
        run_figures(registry.FIGURES, tmp_path, quick=True, log=lambda _: None)
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert [c["name"] for c in claims] == ["fake-a", "fake-b"]


def _square(x: int) -> int:
    return x * x


def test_in_processes_keeps_the_jobs_order() -> None:
    assert in_processes(_square, [3, 1, 2], 2) == [9, 1, 4] == in_processes(_square, [3, 1, 2], 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fig", "tbcim-fig99"], "unknown figure"),
        (["--seeds", "1,1"], "seeds"),
        (["--jobs", "0"], "--jobs"),
        ([], None),  # --out missing
    ],
)
def test_bad_arguments_are_rejected_before_any_work(
    argv: list[str], message: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = [] if message is None else ["--out", str(tmp_path / "figs")]
    assert main(["figures", *out, *argv]) == 2
    err = capsys.readouterr().err
    assert (message or "--out") in err
    assert not (tmp_path / "figs").exists()


def test_out_must_be_a_folder_and_claims_json_ours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["figures", "--out", str(file), "--fig", "fsm-fig5"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    folder = tmp_path / "figs"
    folder.mkdir()
    (folder / "claims.json").write_text("{not json")
    assert main(["figures", "--out", str(folder), "--fig", "fsm-fig5"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    (folder / "claims.json").write_text('{"a": 1}')
    assert main(["figures", "--out", str(folder), "--fig", "fsm-fig5"]) == 2
    assert "not a claims list" in capsys.readouterr().err
    assert (folder / "claims.json").read_text() == '{"a": 1}'  # untouched


def test_list_names_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["figures", "--list"]) == 0
    shown = capsys.readouterr().out
    assert all(name in shown for name in registry.NAMES)
