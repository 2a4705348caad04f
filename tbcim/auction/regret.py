"""Ex-post regret (2)/(4), measured more strongly than training measures it (MODEL-NOTES §2).

For every profile and every ES s, with the others' bids fixed, the ES's utility (M1) at a
misreport b'_s is u_s(b'_s) = p_s(b'_s, b_−s) − z_s(b'_s, b_−s)·c_s (true cost c = truthful bid).
The misreport is one-dimensional, so we search it almost exhaustively
(``docs/auction-mechanisms.md``, (E1)–(E4)):

1. a dense grid of ``grid_points`` bids over V_s = [b_low, b̄];                             (E1)
2. ``zoom_rounds`` rounds of a local grid of ``zoom_points`` around each of the ``zoom_starts``
   highest local maxima of the grid, each round 5× finer (11 points): finds suprema at jumps,
   e.g. just below a rival's bid, and narrow peaks that are not the grid's best point.      (E2)
3. when a differentiable ``torch_outcome`` is given, ``refine_steps`` Adam steps of gradient
   ascent on u_s from the best bid so far, projected onto V_s, with the learning rate falling
   linearly from a fifth of the grid step to 0; the best iterate is re-scored
   with the numpy ``outcome`` so that only the mechanism's own numbers enter the regret.        (E3)

    rgt_s = max(0, max_{candidates b'} u_s(b') − u_s(c_s))                                 (E4)

The same grid yields the monotonicity check: z_s must be non-increasing in b'_s; an increase
above ``monotone_tol`` between neighbouring grid bids is a violation.                       (E5)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from tbcim.auction.mechanism import (
    Mechanism,
    Profiles,
    check_mechanism_setting,
    check_outcome,
)
from tbcim.auction.settings import AuctionSetting
from tbcim.errors import ConfigError

Array = NDArray[np.float64]
TorchOutcome = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]

#: Allowed rise of z_s (a probability) between neighbouring grid bids (E5).
MONOTONE_TOL = 1e-3
#: Upper bound on misreport profiles handed to ``outcome`` in one call.
MAX_ROWS_PER_CALL = 100_000


@dataclass(frozen=True)
class MisreportScan:
    """Per-(profile, ES) results of the search: regret (E4), best misreport, monotonicity (E5)."""

    regret: Array
    truthful_utility: Array
    best_misreport: Array
    monotone_violation: Array  # largest rise of z_s along the grid, ≥ 0


def _positive_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(name, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _UtilityProbe:
    """Evaluates ES s's utility and allocation at many misreports (n rows × K bids each)."""

    def __init__(
        self, mechanism: Mechanism, setting: AuctionSetting, profiles: Profiles, server: int
    ) -> None:
        self.mechanism = mechanism
        self.setting = setting
        self.profiles = profiles
        self.server = server

    def __call__(self, misreports: Array) -> tuple[Array, Array]:
        """misreports (n, K) → (utility, allocation), each (n, K)."""
        n, k = misreports.shape
        rows = np.repeat(np.arange(n), k)
        bids = self.profiles.bids[rows].copy()
        bids[:, self.server] = misreports.reshape(-1)
        trial = Profiles(bids, self.profiles.data_sizes[rows], self.profiles.emds[rows])
        z, p = self.mechanism.outcome(trial)
        z, p = check_outcome(z, p, trial, self.setting.multi_winner, self.mechanism.name)
        cost = self.profiles.bids[rows, self.server]
        utility = p[:, self.server] - z[:, self.server] * cost
        return utility.reshape(n, k), z[:, self.server].reshape(n, k)


def _best(utility: Array, misreports: Array, best_u: Array, best_b: Array) -> None:
    """Update (best_u, best_b) in place with the best of this batch of candidates."""
    index = np.argmax(utility, axis=1)
    rows = np.arange(utility.shape[0])
    better = utility[rows, index] > best_u
    best_u[better] = utility[rows, index][better]
    best_b[better] = misreports[rows, index][better]


def _gradient_refine(
    torch_outcome: TorchOutcome, probe: _UtilityProbe, start: Array, steps: int, lr: float
) -> Array:
    """Projected Adam ascent on u_s from ``start`` (E3); returns the best iterate per row."""
    profiles, server = probe.profiles, probe.server
    low, high = probe.setting.bid_low, probe.setting.bid_high
    dtype = torch.get_default_dtype()
    base = torch.as_tensor(profiles.bids, dtype=dtype)
    sizes = torch.as_tensor(profiles.data_sizes, dtype=dtype)
    emds = torch.as_tensor(profiles.emds, dtype=dtype)
    cost = base[:, server]
    onehot = torch.zeros(profiles.n_servers, dtype=dtype)
    onehot[server] = 1.0
    bid = torch.tensor(start, dtype=dtype, requires_grad=True)
    optimiser = torch.optim.Adam([bid], lr=lr)
    best_u = torch.full_like(cost, -torch.inf)
    best_b = bid.detach().clone()
    for step in range(steps + 1):
        optimiser.param_groups[0]["lr"] = lr * (1.0 - step / (steps + 1))  # linear decay
        bids = base * (1.0 - onehot) + bid[:, None] * onehot
        z, p = torch_outcome(bids, sizes, emds)
        utility = p[:, server] - z[:, server] * cost
        with torch.no_grad():
            better = utility > best_u
            best_u = torch.where(better, utility, best_u)
            best_b = torch.where(better, bid, best_b)
        if not utility.requires_grad:  # the utility does not depend on the bid
            break
        optimiser.zero_grad()
        (-utility.sum()).backward()
        optimiser.step()
        with torch.no_grad():
            bid.clamp_(low, high)
    return best_b.detach().to(torch.float64).numpy()


@dataclass(frozen=True)
class SearchParams:
    """Knobs of the misreport search (E1)–(E3), validated on construction."""

    grid_points: int = 201
    refine_steps: int = 20
    zoom_rounds: int = 3
    zoom_points: int = 11
    zoom_starts: int = 3

    def __post_init__(self) -> None:
        minimum = {"grid_points": 2, "zoom_points": 3, "zoom_starts": 1}
        for name in ("grid_points", "refine_steps", "zoom_rounds", "zoom_points", "zoom_starts"):
            _positive_int(name, getattr(self, name), minimum.get(name, 0))


def misreport_scan(
    mechanism: Mechanism,
    profiles: Profiles,
    setting: AuctionSetting,
    *,
    grid_points: int = 201,
    refine_steps: int = 20,
    zoom_rounds: int = 3,
    zoom_points: int = 11,
    zoom_starts: int = 3,
    torch_outcome: TorchOutcome | None = None,
    monotone_tol: float = MONOTONE_TOL,
) -> MisreportScan:
    """Grid + zoom + gradient search (E1)–(E3) for every profile and ES; see the module doc."""
    search = SearchParams(grid_points, refine_steps, zoom_rounds, zoom_points, zoom_starts)
    if not np.isfinite(monotone_tol) or monotone_tol < 0:
        raise ConfigError("monotone_tol", f"must be finite and >= 0, got {monotone_tol}")
    check_mechanism_setting(mechanism, setting)
    profiles.validate(setting)
    z, p = mechanism.outcome(profiles)
    z, p = check_outcome(z, p, profiles, setting.multi_winner, mechanism.name)
    truthful = p - z * profiles.bids
    best_u = truthful.copy()
    best_b = profiles.bids.copy()
    violation = np.zeros(profiles.shape)
    chunk = max(1, MAX_ROWS_PER_CALL // search.grid_points)
    for server in range(profiles.n_servers):
        for start in range(0, profiles.n_profiles, chunk):
            rows = slice(start, start + chunk)
            probe = _UtilityProbe(mechanism, setting, profiles.take(rows), server)
            # best_u[rows, server] and best_b[rows, server] are views, updated in place.
            violation[rows, server] = _search(
                probe, search, torch_outcome, best_u[rows, server], best_b[rows, server]
            )
    regret = np.maximum(best_u - truthful, 0.0)
    return MisreportScan(regret, truthful, best_b, violation)


def _search(
    probe: _UtilityProbe,
    search: SearchParams,
    torch_outcome: TorchOutcome | None,
    best_u: Array,
    best_b: Array,
) -> Array:
    """(E1)–(E3) for one ES over one chunk of profiles; returns the (E5) violations."""
    low, high = probe.setting.bid_low, probe.setting.bid_high
    n = probe.profiles.n_profiles
    step = (high - low) / (search.grid_points - 1)
    candidates = np.broadcast_to(
        np.linspace(low, high, search.grid_points), (n, search.grid_points)
    )
    utility, allocation = probe(candidates)
    _best(utility, candidates, best_u, best_b)
    centres = _grid_peaks(utility, candidates, search.zoom_starts)
    half_width = step
    for _ in range(search.zoom_rounds):
        centres = _zoom(probe, centres, half_width, search.zoom_points, best_u, best_b)
        half_width = 2.0 * half_width / (search.zoom_points - 1)
    if torch_outcome is not None and search.refine_steps > 0:
        refined = _gradient_refine(
            torch_outcome, probe, best_b.copy(), search.refine_steps, step / 5
        )
        misreports = np.clip(refined, low, high)[:, None]
        _best(probe(misreports)[0], misreports, best_u, best_b)
    return np.maximum(np.diff(allocation, axis=1).max(axis=1), 0.0)


def _grid_peaks(utility: Array, bids: Array, count: int) -> Array:
    """The bids of the ``count`` highest local maxima of each row's grid utility, (n, count).

    A local maximum beats its left neighbour and is not beaten by its right one, so a plateau
    counts once (at its left end). Rows with fewer peaks repeat lower-ranked grid bids.
    """
    edge = np.full((utility.shape[0], 1), -np.inf)
    left = np.concatenate([edge, utility[:, :-1]], axis=1)
    right = np.concatenate([utility[:, 1:], edge], axis=1)
    score = np.where((utility > left) & (utility >= right), utility, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")[:, : min(count, utility.shape[1])]
    return np.take_along_axis(bids, order, axis=1)


def _zoom(
    probe: _UtilityProbe,
    centres: Array,
    half_width: float,
    points: int,
    best_u: Array,
    best_b: Array,
) -> Array:
    """One (E2) round: a local grid around every centre (n, k); returns the new centres."""
    n, k = centres.shape
    offsets = np.linspace(-half_width, half_width, points)
    low, high = probe.setting.bid_low, probe.setting.bid_high
    local = np.clip(centres[:, :, None] + offsets[None, None, :], low, high)  # (n, k, points)
    utility, _ = probe(local.reshape(n, k * points))
    _best(utility, local.reshape(n, k * points), best_u, best_b)
    winner = utility.reshape(n, k, points).argmax(axis=2)
    return np.take_along_axis(local, winner[:, :, None], axis=2)[:, :, 0]


def regret_per_profile(
    mechanism: Mechanism,
    profiles: Profiles,
    setting: AuctionSetting,
    *,
    grid_points: int = 201,
    refine_steps: int = 20,
    torch_outcome: TorchOutcome | None = None,
    **search: int | float,
) -> Array:
    """Ex-post regret rgt_s of (E4) for every profile and ES, shape (B, S), in money units."""
    return misreport_scan(
        mechanism,
        profiles,
        setting,
        grid_points=grid_points,
        refine_steps=refine_steps,
        torch_outcome=torch_outcome,
        **search,  # type: ignore[arg-type]
    ).regret
