"""RANet-exact: a learned reverse auction that is truthful by construction (Myerson's lemma).

Each ES's private type is one number, its cost; its data size d_s and EMD θ_s are public
(MODEL-NOTES §2). For such single-parameter agents an allocation z_s that is non-increasing in the
ES's own bid, paired with the threshold payment

    p_s(b) = z_s(b)·b_s + ∫_{b_s}^{b̄} z_s(t, b_−s) dt,                                    (X1)

is dominant-strategy truthful and individually rational (u_s = ∫_{c_s}^{b̄} z_s dt ≥ 0 at the
truthful bid). This is MyersonNet's construction (RegretNet paper, section 3), transposed to
procurement. The network below makes both halves exact (``docs/auction.md`` §6):

* **Own-bid logit, a monotone lattice.** For ES s, a context network reads everything *except*
  its own bid and returns a logit ℓ_s(τ) of the own normalised bid τ = (b_s − b_low)/(b̄ − b_low)
  that is piecewise linear on M equal segments [τ_j, τ_{j+1}] with non-positive slopes:

      ℓ_s(τ) = ℓ_{s,0} − Σ_j α_{s,j}·clamp(τ − τ_j, 0, 1/M),                              (X2)
      α_{s,j} = α_min + κ·softplus(r_{s,j}),

  so ℓ_s is strictly decreasing in the own bid for any weights (a 1-D lattice with monotone
  knots, not a penalty).
* **Allocation.**
  - Multi-winner (TBCIM): z_s = σ(ℓ_s(τ_s)), and the context is the others' bids and everybody's
    public (d, θ): any dependence on the others is allowed, because z_s only needs to be monotone
    in the own bid.                                                                      (X3)
  - Single winner with a "buy nothing" option: a softmax over (a_0, ℓ_1(τ_1), …, ℓ_S(τ_S)), z the
    last S entries. Here ℓ_k may not depend on any bid but b_k (else ES s's bid could move a
    rival's score); its context is the public data only, and the buy-nothing logit a_0 is a
    network of the public data. Then z_s(t) = σ(ℓ_s(t) − o_s) with
    o_s = log(e^{a_0} + Σ_{k≠s} e^{ℓ_k(τ_k)}) independent of b_s: monotone. ℓ is MyersonNet's
    "virtual value" (here a virtual cost), and Myerson's optimum (the lowest virtual cost wins if
    it is below V) is the limit of steep slopes.                                            (X4)
* **Threshold payment by exact quadrature.** On each segment the integrand of (X1) is a logistic
  of a linear function, whose integral is closed form:

      ∫_{lo}^{hi} σ(x_lo − α(τ − lo)) dτ = [softplus(x_lo) − softplus(x_lo − α(hi − lo))]/α,   (X5)

  summed over the segments of [τ_s, 1] (times b̄ − b_low for money). The quadrature is exact for
  this family, so its only error is float64 rounding; :meth:`ExactRANet.payment_error_bound`
  returns a first-order bound of that rounding per (profile, ES), and the tests check the
  payments against an independent fine-grid numpy sum with a rigorous monotone bracket. Why not
  a general monotone MLP and a numeric rule: for a monotone integrand the trapezoid rule's only
  guaranteed bound is Δz·h/2, which needs ~10^5 nodes per payment for an error of 1e-5 of the bid
  range, and each node is a network evaluation.

IR holds by construction: p_s − z_s·b_s = (b̄ − b_low)·Σ (X5) ≥ 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tbcim.auction.mechanism import Profiles
from tbcim.auction.ranet.nets import _mlp, check_profile_shapes
from tbcim.auction.settings import AuctionSetting
from tbcim.errors import ConfigError

#: Smallest slope of the own-bid logit per unit normalised bid (keeps (X5) well conditioned).
ALPHA_MIN = 1e-2
#: Unit roundoff of float64, the dtype of every payment computation.
EPS = float(np.finfo(np.float64).eps)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x), exact to rounding for every x (torch's own switches to x above 20)."""
    return torch.clamp(x, min=0.0) + torch.log1p(torch.exp(-torch.abs(x)))


def lattice_logit(top: torch.Tensor, slopes: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """ℓ(τ) of (X2): ``top`` (...,), ``slopes`` (..., M) ≥ 0, ``tau`` (...,) in [0, 1]."""
    segments = slopes.shape[-1]
    knots = torch.arange(segments, dtype=slopes.dtype) / segments
    run = torch.clamp(tau[..., None] - knots, 0.0, 1.0 / segments)
    return top - (slopes * run).sum(-1)


def lattice_integral(
    top: torch.Tensor, slopes: torch.Tensor, tau: torch.Tensor, offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """∫_τ^1 σ(ℓ(t) − offset) dt by (X5) summed over the segments, and its rounding bound.

    Shapes as in :func:`lattice_logit`; ``offset`` (...,). Returns (integral, bound), both
    (...,), in units of the normalised bid.
    """
    segments = slopes.shape[-1]
    knots = torch.arange(segments, dtype=slopes.dtype) / segments
    ends = knots + 1.0 / segments
    # Knot values K_j = ℓ(τ_j) = top − Σ_{i<j} α_i/M.
    knot_values = top[..., None] - torch.cumsum(slopes, -1) / segments + slopes / segments
    lo = torch.maximum(tau[..., None], knots)
    length = torch.clamp(ends - lo, min=0.0)
    lo = torch.minimum(lo, ends)
    x_lo = knot_values - slopes * (lo - knots) - offset[..., None]
    x_hi = x_lo - slopes * length
    sp_lo, sp_hi = softplus(x_lo), softplus(x_hi)
    integral = ((sp_lo - sp_hi) / slopes).sum(-1)
    # First-order rounding model: each softplus to 4 ulps of its value, each x to 4 ulps of the
    # magnitudes summed into it; (X5) is 1-Lipschitz in x before the division by α.
    with torch.no_grad():
        x_err = 4 * EPS * (knot_values.abs() + slopes + offset.abs()[..., None] + 1.0)
        term = (4 * EPS * (sp_lo + sp_hi) + 2 * x_err) / slopes
        bound = (term * (length > 0)).sum(-1) + 4 * EPS * segments * integral.abs()
    return integral, bound


def cyclic_others(n_servers: int) -> torch.Tensor:
    """(S, S − 1) index: row s lists the other ESs in the order s+1, …, s−1 (mod S)."""
    return torch.tensor(
        [[(s + k) % n_servers for k in range(1, n_servers)] for s in range(n_servers)],
        dtype=torch.long,
    ).reshape(n_servers, n_servers - 1)


class ExactRANet(nn.Module):
    """The truthful-by-construction learned auction (X1)–(X5); implements ``Mechanism``.

    ``forward``/``torch_outcome`` are differentiable in the weights and the bids;
    ``outcome`` takes validated numpy ``Profiles``. All arithmetic is float64.
    """

    name = "ranet-exact"
    feature_low: torch.Tensor  # (3,) buffers: lower end and span of bid, d, θ
    feature_span: torch.Tensor
    others: torch.Tensor  # (S, S − 1) cyclic index of the other ESs

    def __init__(
        self,
        setting: AuctionSetting,
        hidden: Sequence[int] = (64, 64),
        segments: int = 16,
        slope_scale: float = 10.0,
        data_size_range: tuple[float, float] = (0.0, 1.0),
        emd_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__()
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ConfigError("hidden", f"needs at least one layer of positive width, got {hidden}")
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
            raise ConfigError("segments", f"must be a positive integer, got {segments!r}")
        if not (isinstance(slope_scale, int | float) and 0 < slope_scale < float("inf")):
            raise ConfigError("slope_scale", f"must be positive and finite, got {slope_scale!r}")
        self.setting = setting
        self.hidden = tuple(int(h) for h in hidden)
        self.segments = segments
        self.slope_scale = float(slope_scale)
        n = setting.n_servers
        # Context of ES s: own (d, θ) + the others' features; the others' bids only when the
        # allocation is per-ES (multi-winner), see (X3)/(X4).
        others = (3 if setting.multi_winner else 2) * (n - 1)
        self.logit_net = _mlp(2 + others, segments + 1, self.hidden)
        self.reserve_net = None if setting.multi_winner else _mlp(2 * n, 1, self.hidden)
        self.register_buffer("others", cyclic_others(n), persistent=False)
        lows, spans = [], []
        for low, high in ((setting.bid_low, setting.bid_high), data_size_range, emd_range):
            lows.append(low)
            spans.append(high - low if high > low else float("inf"))  # constant → zero input
        self.register_buffer("feature_low", torch.tensor(lows, dtype=torch.float64))
        self.register_buffer("feature_span", torch.tensor(spans, dtype=torch.float64))
        self.double()

    @property
    def n_servers(self) -> int:
        return self.setting.n_servers

    def _lattice(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Per-ES lattice (top (B, S), slopes (B, S, M)) and the buy-nothing logit (B,)."""
        own = x[:, :, 1:]  # (B, S, 2): own d, θ
        # (B, S, S−1, 3): the others' bid, d, θ; single winner (B, S, S−1, 2): public data only.
        rest = x[:, self.others, 0 if self.setting.multi_winner else 1 :]
        context = torch.cat([own, rest.flatten(2)], dim=-1)
        out = self.logit_net(context)
        top = out[..., 0]
        slopes = ALPHA_MIN + self.slope_scale * nn.functional.softplus(out[..., 1:])
        reserve = None
        if self.reserve_net is not None:
            reserve = self.reserve_net(x[:, :, 1:].flatten(1))[:, 0]
        return top, slopes, reserve

    def allocation_and_integral(
        self, bids: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, ∫_{b_s}^{b̄} z_s dt in money, its rounding bound in money), each (B, S)."""
        check_profile_shapes(self.setting, bids, data_sizes, emds)
        dtype = torch.float64
        raw = torch.stack([bids.to(dtype), data_sizes.to(dtype), emds.to(dtype)], dim=-1)
        x = (raw - self.feature_low) / self.feature_span  # (B, S, 3)
        tau = x[..., 0].clamp(0.0, 1.0)
        top, slopes, reserve = self._lattice(x)
        logit = lattice_logit(top, slopes, tau)  # (B, S)
        if reserve is None:
            offset = torch.zeros_like(logit)
            z = torch.sigmoid(logit)
        else:
            n = self.n_servers
            scores = torch.cat([reserve[:, None], logit], dim=1)  # (B, S+1)
            z = torch.softmax(scores, dim=1)[:, 1:]
            # o_s = logsumexp of every score but ES s's own, (X4).
            mask = torch.eye(n, dtype=torch.bool)
            others = logit[:, None, :].expand(-1, n, -1).masked_fill(mask, -torch.inf)
            offset = torch.logsumexp(
                torch.cat([reserve[:, None, None].expand(-1, n, 1), others], dim=2), dim=2
            )
        integral, bound = lattice_integral(top, slopes, tau, offset)
        width = self.setting.bid_high - self.setting.bid_low
        return z, width * integral, width * bound

    def forward(
        self, bids: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, p) of (X1) for (B, S) tensors, float64."""
        z, integral, _ = self.allocation_and_integral(bids, data_sizes, emds)
        return z, z * bids.to(torch.float64) + integral

    def torch_outcome(
        self, bids: torch.Tensor, data_sizes: torch.Tensor, emds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (z, p) for the regret evaluator (gradient w.r.t. the bids)."""
        return self(bids, data_sizes, emds)

    def _numpy_call(self, profiles: Profiles) -> tuple[torch.Tensor, ...]:
        profiles.validate(self.setting)
        with torch.no_grad():
            return self.allocation_and_integral(
                torch.as_tensor(profiles.bids),
                torch.as_tensor(profiles.data_sizes),
                torch.as_tensor(profiles.emds),
            )

    def outcome(self, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
        """(z, p) as float64 arrays; wrong S, NaN/inf or bids outside V raise ConfigError."""
        z, integral, _ = self._numpy_call(profiles)
        p = z * torch.as_tensor(profiles.bids) + integral
        return z.numpy(), p.numpy()

    def payment_error_bound(self, profiles: Profiles) -> np.ndarray:
        """Rounding bound of each payment's quadrature (X5), in money units, (B, S).

        Add 4 ulps of |z_s·b_s| for the first term of (X1).
        """
        z, _, bound = self._numpy_call(profiles)
        return (bound + 4 * EPS * (z * torch.as_tensor(profiles.bids)).abs()).numpy()
