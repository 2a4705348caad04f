"""Detection rates, the threshold choice rule (tbcim/fl/detection.py) and scripts/fl_detection.py
on a tiny grid."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tbcim.errors import ConfigError
from tbcim.fl.detection import choose, rates


@dataclass(frozen=True)
class Rec:
    round: int
    participants: tuple[int, ...]
    accepted: tuple[int, ...]


def test_rates_count_attackers_from_their_switch_and_honest_eds_always() -> None:
    records = [
        Rec(0, (0, 1, 2), (0, 1)),  # attacker 0 before its switch: counted nowhere
        Rec(1, (0, 1, 2), (1, 2)),  # attacker 0 caught
        Rec(2, (0, 1), (0,)),  # attacker 0 missed, honest 1 rejected
    ]
    r = rates(records, {0}, start=1)
    assert (r.malicious, r.malicious_rejected, r.honest, r.honest_rejected) == (2, 1, 5, 2)
    assert r.detection == 0.5 and r.false_positive == 0.4
    empty = rates([], {0}, 0)
    assert empty.detection is None and empty.false_positive is None


def test_choose_maximises_detection_under_the_false_positive_cap() -> None:
    det = {0.0: 0.5, 0.1: 0.9, 0.2: 0.9, 0.3: 1.0}
    fp = {0.0: 0.0, 0.1: 0.01, 0.2: 0.05, 0.3: 0.2}
    assert choose(det, fp) == 0.2  # 0.3 is over the cap; 0.1 and 0.2 tie: the larger
    assert choose(det, fp, max_false_positive=0.005) == 0.0
    assert choose(det, {v: 0.5 for v in det}) is None
    with pytest.raises(ConfigError, match="same points"):
        choose(det, {0.0: 0.0})


def _script_main() -> Callable[[list[str]], int]:
    path = Path(__file__).resolve().parents[2] / "scripts" / "fl_detection.py"
    spec = importlib.util.spec_from_file_location("fl_detection", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    main: Callable[[list[str]], int] = module.main
    return main


def test_the_script_writes_points_and_its_choice(tmp_path: Path) -> None:
    main = _script_main()
    out = tmp_path / "det.json"
    args = ["--json", str(out), "--seeds", "101", "--epsilons", "0,0.1", "--attacks"]
    args += ["sign_flip", "--rounds", "2", "--switch", "1", "--eds-per-server", "1"]
    assert main([*args, "--norm-bounds", "3"]) == 0
    payload = json.loads(out.read_text())
    assert payload["complete"] is True
    assert len(payload["points"]) == 2 * 2 * 2  # rules x starts x eps
    assert payload["chosen_epsilon"] in (0.0, 0.1, None)
    point = payload["points"][0]
    assert 0.0 <= point["malicious_rejected_rate"] <= 1.0
    assert 0.0 <= point["honest_rejected_rate"] <= 1.0
    png = tmp_path / "det.png"
    assert main(["--json", str(out), "--png", str(png), "--replot"]) == 0
    assert png.stat().st_size > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "0"], "test seeds"),
        (["--attacks", "bogus"], "unknown attack"),
        (["--switch", "12"], "--switch"),
        (["--replot"], "--replot needs --png"),
    ],
)
def test_the_script_refuses_bad_arguments(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main = _script_main()
    with pytest.raises(SystemExit):
        main(["--json", str(tmp_path / "x.json"), *extra])
    assert message in capsys.readouterr().err
