"""Held-out evaluation of a mechanism and of the baselines on the same profiles (issue 4, item 3).

All figures are means over the profiles (``docs/auction-mechanisms.md``):

* ``buyer_utility``      U_d(z) − Σ p, the paper's "social welfare" (1)                      (M2)
* ``social_welfare``     U_d(z) − Σ z·c, true social welfare                                 (M3)
* ``es_surplus``         Σ_s u_s                                                             (M1)
* ``regret_mean`` / ``regret_max``   rgt_s of (E4) divided by the bid range b̄ − b_low, mean and
  max over profiles and ESs; ``regret_mean_per_es`` the mean per ES
* ``ir_violation_rate``  share of (profile, ES) pairs with u_s < −IR_TOL·(b̄ − b_low)        (E6)
* ``monotone``           no rise of z_s above the tolerance along any grid (E5)
* ``buyer_utility_realised`` (multi-winner) E_W[U_d(W)] − Σ p when winners are drawn
  independently from z (M4), against the training relaxation (U2) in ``buyer_utility``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbcim.auction.baselines import get_baselines
from tbcim.auction.mechanism import (
    Mechanism,
    Profiles,
    check_mechanism_setting,
    check_outcome,
)
from tbcim.auction.regret import MONOTONE_TOL, TorchOutcome, misreport_scan
from tbcim.auction.settings import AuctionSetting, TbcimSetting
from tbcim.auction.utility import MAX_ENUMERATED_SERVERS, realised_tbcim_value
from tbcim.errors import ConfigError, TbcimError

#: An ES utility below −IR_TOL·(bid range) counts as an IR violation (E6).
IR_TOL = 1e-6
#: Profiles on which each baseline's regret is searched (its welfare uses all profiles).
BASELINE_REGRET_SAMPLES = 1000
#: Rows per chunk when computing the realised value by enumeration.
REALISED_CHUNK = 2048


def outcome_metrics(
    setting: AuctionSetting, profiles: Profiles, z: np.ndarray, p: np.ndarray
) -> dict[str, float]:
    """Welfare figures (M1)–(M3), the IR-violation rate (E6) and, multi-winner, (M4)."""
    costs = profiles.bids
    value = setting.buyer_value(z, profiles)
    utilities = p - z * costs
    metrics = {
        "buyer_utility": float(np.mean(value - p.sum(axis=1))),
        "social_welfare": float(np.mean(value - (z * costs).sum(axis=1))),
        "es_surplus": float(np.mean(utilities.sum(axis=1))),
        "payment_total": float(np.mean(p.sum(axis=1))),
        "expected_winners": float(np.mean(z.sum(axis=1))),
        "ir_violation_rate": float(np.mean(utilities < -IR_TOL * setting.bid_range)),
    }
    if isinstance(setting, TbcimSetting) and profiles.n_servers <= MAX_ENUMERATED_SERVERS:
        realised = np.concatenate(
            [
                realised_tbcim_value(
                    z[i : i + REALISED_CHUNK],
                    profiles.data_sizes[i : i + REALISED_CHUNK],
                    profiles.emds[i : i + REALISED_CHUNK],
                    setting.quality,
                )
                for i in range(0, profiles.n_profiles, REALISED_CHUNK)
            ]
        )
        metrics["buyer_utility_realised"] = float(np.mean(realised - p.sum(axis=1)))
    return metrics


def regret_metrics(
    mechanism: Mechanism,
    setting: AuctionSetting,
    profiles: Profiles,
    torch_outcome: TorchOutcome | None = None,
    monotone_tol: float = MONOTONE_TOL,
    **search: Any,
) -> dict[str, Any]:
    """Regret (E4) normalised by the bid range, and monotonicity (E5), from one scan."""
    scan = misreport_scan(
        mechanism,
        profiles,
        setting,
        torch_outcome=torch_outcome,
        monotone_tol=monotone_tol,
        **search,
    )
    regret = scan.regret / setting.bid_range
    return {
        "regret_mean": float(regret.mean()),
        "regret_max": float(regret.max()),
        "regret_mean_per_es": [float(r) for r in regret.mean(axis=0)],
        "monotone": bool(scan.monotone_violation.max() <= monotone_tol),
        "monotone_violation_max": float(scan.monotone_violation.max()),
        "monotone_violation_rate": float(np.mean(scan.monotone_violation > monotone_tol)),
        "regret_samples": profiles.n_profiles,
    }


def evaluate(
    mechanism: Mechanism,
    setting: AuctionSetting,
    profiles: Profiles,
    *,
    torch_outcome: TorchOutcome | None = None,
    baselines: bool = True,
    baseline_regret_samples: int = BASELINE_REGRET_SAMPLES,
    **regret_kw: Any,
) -> dict[str, Any]:
    """Every figure of the module doc for ``mechanism``, plus the baselines on the same profiles.

    ``regret_kw`` goes to :func:`tbcim.auction.regret.misreport_scan` (grid_points, refine_steps,
    zoom_rounds, zoom_points, monotone_tol). Baseline regrets are searched on the first
    ``baseline_regret_samples`` profiles, with the same search settings but no gradient step.
    """
    if (
        isinstance(baseline_regret_samples, bool)
        or not isinstance(baseline_regret_samples, int)
        or baseline_regret_samples < 1
    ):
        raise ConfigError("baseline_regret_samples", "must be a positive integer")
    check_mechanism_setting(mechanism, setting)
    profiles.validate(setting)
    z, p = mechanism.outcome(profiles)
    z, p = check_outcome(z, p, profiles, setting.multi_winner, mechanism.name)
    result: dict[str, Any] = {
        "mechanism": mechanism.name,
        "setting": setting.name,
        "samples": profiles.n_profiles,
        "optimal_buyer_utility": setting.optimal_buyer_utility,
        "bid_low": setting.bid_low,
        "bid_high": setting.bid_high,
        **outcome_metrics(setting, profiles, z, p),
        **regret_metrics(mechanism, setting, profiles, torch_outcome, **regret_kw),
    }
    if baselines:
        search = {k: v for k, v in regret_kw.items() if k != "refine_steps"}
        result["baselines"] = evaluate_baselines(
            setting, profiles, baseline_regret_samples, **search
        )
    return result


def evaluate_baselines(
    setting: AuctionSetting, profiles: Profiles, regret_samples: int, **regret_kw: Any
) -> dict[str, dict[str, Any]]:
    """Every analytic mechanism of ``setting`` on ``profiles`` (regret on the first rows)."""
    subset = profiles.take(slice(0, regret_samples))
    table: dict[str, dict[str, Any]] = {}
    for mechanism in get_baselines(setting):
        z, p = check_outcome(*mechanism.outcome(profiles), profiles, setting.multi_winner)
        table[mechanism.name] = {
            **outcome_metrics(setting, profiles, z, p),
            **regret_metrics(mechanism, setting, subset, None, **regret_kw),
        }
    return table


def main(argv: list[str] | None = None) -> int:
    """``python -m tbcim.auction.evaluate``: the analytic mechanisms' figures as JSON."""
    import argparse
    import time

    from tbcim.auction.settings import SETTING_NAMES, get_setting
    from tbcim.results import write_json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--setting", action="append", choices=SETTING_NAMES, required=True)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--regret-samples", type=int, default=BASELINE_REGRET_SAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    report = {}
    try:
        if args.regret_samples < 1:
            raise ConfigError("regret_samples", "must be a positive integer")
        for name in args.setting:
            started = time.perf_counter()
            setting = get_setting(name)
            profiles = setting.sample(args.samples, np.random.default_rng(args.seed))
            report[name] = evaluate_baselines(setting, profiles, args.regret_samples)
            print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
    except TbcimError as err:
        print(f"error: {err}", flush=True)
        return 2
    write_json(args.json, report)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
