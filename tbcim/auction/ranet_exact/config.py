"""Training configuration of RANet-exact, its presets and its ``[train]`` table.

No Lagrangian, no misreports: the mechanism is truthful by construction, so training is plain
Adam ascent on the buyer utility (M2) at truthful bids. A run config file is the same TOML/JSON as
RANet's (``[setting]`` overrides and a ``[train]`` table, read by
:func:`tbcim.auction.ranet.config.read_config_file`), with the fields of :class:`ExactConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tbcim.configfile import dataclass_from_table
from tbcim.errors import ConfigError


@dataclass(frozen=True)
class ExactConfig:
    """Architecture and optimiser of RANet-exact (``docs/auction.md`` §6)."""

    # Context network: tanh layers of this width; the own-bid lattice has `segments` pieces.
    hidden_layers: int = 2
    hidden_width: int = 64
    segments: int = 16
    # Slope of the lattice per unit normalised bid: α = α_min + slope_scale·softplus(r).
    slope_scale: float = 10.0
    # Training and validation profiles (validation: model selection only).
    n_train: int = 40_000
    n_val: int = 10_000
    batch_size: int = 500
    epochs: int = 20
    # Adam, learning rate decayed linearly from `lr` to `lr`·`lr_final_factor`.
    lr: float = 3e-3
    lr_final_factor: float = 0.1
    # Stop after this many epochs without a better validation buyer utility (0 = never).
    patience: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden_layers", "hidden_width", "segments", "n_train", "n_val"):
            _check_int(name, getattr(self, name), 1)
        for name in ("batch_size", "epochs"):
            _check_int(name, getattr(self, name), 1)
        _check_int("patience", self.patience, 0)
        for name in ("slope_scale", "lr"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (0 < value < float("inf"))
            ):
                raise ConfigError(name, f"must be a positive finite number, got {value!r}")
        factor = self.lr_final_factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1:
            raise ConfigError("lr_final_factor", f"must lie in (0, 1], got {factor!r}")
        if self.batch_size > self.n_train:
            raise ConfigError("batch_size", f"exceeds n_train ({self.n_train})")

    @property
    def hidden(self) -> tuple[int, ...]:
        return (self.hidden_width,) * self.hidden_layers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(name, f"must be an integer >= {minimum}, got {value!r}")


#: Named starting points. ``quick`` is the benchmark's; ``smoke`` runs in a second or two.
EXACT_PRESETS: dict[str, ExactConfig] = {
    "smoke": ExactConfig(
        hidden_width=16, segments=8, n_train=2_000, n_val=1_000, batch_size=250, epochs=3
    ),
    "quick": ExactConfig(),
}


def exact_preset(name: str) -> ExactConfig:
    """The preset called ``name``; unknown names raise ConfigError("preset", ...)."""
    if name not in EXACT_PRESETS:
        raise ConfigError(
            "preset", f"unknown ranet-exact preset {name!r}; choose from {sorted(EXACT_PRESETS)}"
        )
    return EXACT_PRESETS[name]


def exact_config_from_mapping(values: dict[str, Any], base: ExactConfig) -> ExactConfig:
    """``base`` with the fields in ``values`` replaced, parsed by the shared reader
    (:func:`tbcim.configfile.dataclass_from_table`): unknown keys, wrong types and out-of-range
    values are ConfigErrors naming the field relative to the table (wrap in ``keyed("train")``).
    """
    return dataclass_from_table(ExactConfig, values, "", base)
