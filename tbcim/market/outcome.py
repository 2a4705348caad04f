"""The award: the mechanism's outcome on the revealed bids, reproducible by anyone (section III).

Every revealing ES computes the outcome from chain data alone, and ``tbcim market verify`` does
the same after the fact:

1. the revealed bids are ordered by bidder address (canonical, whatever the reveal order), and
   read as a profile: b_s = bid / wei_per_unit, d_s, θ_s = emd_ppm / 1e6;
2. the mechanism gives (z, p) (:class:`tbcim.auction.mechanism.Mechanism`);
3. the winners are drawn from z with numpy's generator seeded by the contract's seed, the XOR of
   keccak(bidder, salt) over the reveals (no bidder knows it before every salt is revealed), and
   each winner is paid p_s / z_s (:func:`tbcim.auction.mechanism.realise`, M4);
4. payments are rounded down to whole gwei (:func:`payment_in_wei`); a drawn winner whose
   payment rounds to 0 is dropped (it would serve for nothing, and the contract refuses zero
   payments).

Why gwei: p_s / z_s is a float64 of about 0.05 ether, whose last bit is worth about 7 wei, so two
honest ESs whose BLAS or CPU differ in one ulp would otherwise vote for different outcome hashes
and the award would never reach a majority. A gwei is 10^8 ulps; a payment moves only if it lies
within an ulp of a gwei boundary.

The mechanism is committed in the task's terms as keccak(name ‖ sha256(model file)), so a
verifier also checks that it runs the very model the requester published.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from eth_utils import keccak, to_checksum_address

from tbcim.auction.mechanism import Mechanism, Profiles, realise
from tbcim.errors import ConfigError

PPM = 1_000_000
#: Payments are whole multiples of this many wei (1 gwei): far coarser than float64 noise.
PAYMENT_QUANTUM = 10**9


@dataclass(frozen=True)
class Reveal:
    """One revealed bid as the contract stores it."""

    bidder: str
    bid_wei: int
    data_size: int
    emd_ppm: int


@dataclass(frozen=True)
class LoadedMechanism:
    """A mechanism ready to run, its setting, and its commitment."""

    name: str
    mechanism: Mechanism
    setting: Any  # tbcim.auction.settings.AuctionSetting
    model_sha256: str | None  # learned mechanisms only
    commitment: bytes  # keccak(name ‖ sha256 of the model file, or of the setting's name)


@dataclass(frozen=True)
class Award:
    """The outcome of one auction: winners ascending by address, each one's payment in wei."""

    winners: tuple[str, ...]
    payments_wei: tuple[int, ...]
    bidders: tuple[str, ...]  # the profile's order (ascending address)
    allocation: tuple[float, ...]  # z per bidder
    expected_payment: tuple[float, ...]  # p per bidder (money units)

    def as_dict(self) -> dict[str, Any]:
        return {
            "winners": list(self.winners),
            "payments_wei": [str(p) for p in self.payments_wei],
            "bidders": list(self.bidders),
            "allocation": list(self.allocation),
            "expected_payment": list(self.expected_payment),
        }


def payment_in_wei(unit_payment: float, wei_per_unit: int) -> int:
    """A payment of ``unit_payment`` money units in wei, rounded down to whole gwei."""
    quanta_per_unit = wei_per_unit // PAYMENT_QUANTUM
    return int(np.floor(unit_payment * quanta_per_unit)) * PAYMENT_QUANTUM


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_mechanism(name: str, model: Path | None, n_servers: int) -> LoadedMechanism:
    """The named mechanism for ``n_servers`` bidders: a learned one from its model file, an
    analytic one on the built-in TBCIM setting ``tbcim-<n_servers>``. A model trained for
    another number of ESs is a ConfigError: the auction needs exactly that many bidders."""
    from tbcim.auction.registry import LEARNED, analytic_mechanism, load_learned
    from tbcim.auction.settings import tbcim_setting

    if name in LEARNED:
        if model is None or not Path(model).is_file():
            raise ConfigError("market.model", f"no model file at {model} for {name}")
        learned, _ = load_learned(model)
        setting = learned.setting
        digest = file_sha256(model)
        mechanism: Mechanism = learned
    else:
        setting = tbcim_setting(n_servers)
        mechanism = analytic_mechanism(name, setting)
        digest = None
    if setting.n_servers != n_servers:
        raise ConfigError(
            "chain.servers",
            f"the market has {n_servers} ESs but {name}'s model is for "
            f"{setting.n_servers} bidders ({model})",
        )
    commitment = keccak(name.encode() + bytes.fromhex(digest or "") + setting.name.encode())
    return LoadedMechanism(name, mechanism, setting, digest, commitment)


def compute_award(
    loaded: LoadedMechanism, reveals: list[Reveal], seed: int, wei_per_unit: int
) -> Award:
    """The mechanism's outcome on ``reveals`` with the contract's ``seed`` (module docstring)."""
    setting = loaded.setting
    if len(reveals) != setting.n_servers:
        raise ConfigError(
            "bids",
            f"{loaded.name} needs {setting.n_servers} revealed bids, the chain holds "
            f"{len(reveals)}",
        )
    ordered = sorted(reveals, key=lambda r: int(r.bidder, 16))
    profiles = Profiles(
        np.array([[r.bid_wei / wei_per_unit for r in ordered]]),
        np.array([[float(r.data_size) for r in ordered]]),
        np.array([[r.emd_ppm / PPM for r in ordered]]),
    )
    profiles.validate(setting)
    z, p = loaded.mechanism.outcome(profiles)
    won, pay = realise(z, p, setting.multi_winner, np.random.default_rng(seed))
    winners, payments = [], []
    for s, reveal in enumerate(ordered):
        wei = payment_in_wei(float(pay[0, s]), wei_per_unit)
        if won[0, s] and wei > 0:
            winners.append(to_checksum_address(reveal.bidder))
            payments.append(wei)
    return Award(
        winners=tuple(winners),
        payments_wei=tuple(payments),
        bidders=tuple(to_checksum_address(r.bidder) for r in ordered),
        allocation=tuple(float(v) for v in z[0]),
        expected_payment=tuple(float(v) for v in p[0]),
    )


def retrain(name: str, n_servers: int, seed: int, out: Path) -> Path:
    """Train the learned mechanism ``name`` afresh for ``n_servers`` ESs with the committed
    config that produced the shipped model (``configs/<name>/tbcim-<S>.toml``, preset
    ``quick``), seeded by ``seed``; saves it to ``out`` (``tbcim market run --retrain``)."""
    from tbcim.auction.ranet.config import read_config_file
    from tbcim.auction.registry import LEARNED, save_learned, train_learned, training_config
    from tbcim.auction.settings import setting_from_dict

    if name not in LEARNED:
        raise ConfigError("--retrain", f"{name} is analytic; only {LEARNED} are trained")
    path = Path(__file__).resolve().parents[2] / "configs" / name / f"tbcim-{n_servers}.toml"
    if not path.is_file():
        raise ConfigError("--retrain", f"no training config {path} for {n_servers} ESs")
    overrides, options = read_config_file(path)
    spec = {"base": f"tbcim-{n_servers}", **overrides}
    result = train_learned(
        name, setting_from_dict(spec), training_config(name, options, "quick"), seed
    )
    return save_learned(out, result, spec)
