"""The one configuration reader of TBCIM: every package parses its own table through it.

* :func:`read_config` reads a file: TOML (``.toml``) or JSON (``.json``), chosen by the suffix;
  any other suffix, a missing file, a parse error or a top level that is not a table is a
  :class:`ConfigError` on ``config``.
* :func:`check_table` rejects keys a table does not know, by their dotted path
  (``train.hidden_widht``, ``setting.quality.a9``).
* :func:`check_value` checks one value against a type (``int``, ``float``, ``str``, ``bool``,
  ``X | None``, ``tuple[float, ...]``), naming the key.
* :func:`dataclass_from_table` builds a frozen config dataclass from a table: unknown keys and
  wrong types by dotted key, and the dataclass's own range checks (``ConfigError(field, ...)``
  from ``__post_init__``) re-keyed under the table's path by :func:`keyed`.
* :func:`config_with_flags` is a benchmark's or script's config: one table of a file (or the
  defaults), with the command line's flags on top; :func:`int_list` parses a flag such as
  ``--seeds 1,2,3`` and :func:`check_counts` / :func:`check_seeds` are the usual range checks;
  :func:`provenance` is what its JSON records of the run (command, date, file, resolved config).

A package names errors relative to its own table; whoever composes tables into one file wraps
each package's parsing in ``keyed(TABLE)``, so the user always sees the full dotted key.

This module is part of the base layer: it imports nothing from the project but
:mod:`tbcim.errors`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tomllib
import types
import typing
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tbcim.errors import ConfigError

#: The file formats a configuration may use, by suffix.
CONFIG_SUFFIXES = (".toml", ".json")

T = TypeVar("T")


def read_config(path: str | Path, field: str = "config") -> dict[str, Any]:
    """The top-level table of a TOML or JSON file; every failure is a ConfigError on ``field``."""
    file = Path(path)
    if file.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigError(
            field, f"{file}: use a .toml or .json file, not {file.suffix or 'none'!r}"
        )
    if not file.is_file():
        raise ConfigError(field, f"no such file: {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(field, f"cannot read {file}: {err}") from err
    try:
        values = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(field, f"cannot parse {file}: {err}") from err
    if not isinstance(values, dict):
        raise ConfigError(field, f"{file}: the top level must be a table/object")
    return values


def dotted(table: str, key: str) -> str:
    """``table.key``, or ``key`` at the top level (``table == ""``)."""
    return f"{table}.{key}" if table else key


def check_table(raw: Any, table: str, allowed: Collection[str] | None = None) -> Mapping[str, Any]:
    """``raw`` as a mapping whose keys are all in ``allowed``; ``None`` (table absent) is empty.

    ``table`` is the dotted path of this table ("" for the top level of a file); ``allowed=None``
    checks only that ``raw`` is a table (its own parser checks the keys later).
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(table or "config", "must be a table/object")
    for key in raw:
        if allowed is not None and key not in allowed:
            raise ConfigError(dotted(table, str(key)), f"unknown key; known: {sorted(allowed)}")
    return raw


@contextmanager
def keyed(table: str) -> Iterator[None]:
    """Re-raise a ConfigError from the block with its field under ``table``.

    A field already under ``table`` (``quality.a1`` inside ``quality``) is left alone, so a
    dataclass may name its fields either relative to its table or with the table's name.
    """
    try:
        yield
    except ConfigError as err:
        if not table or err.field == table or err.field.startswith((f"{table}.", f"{table}[")):
            raise
        raise ConfigError(dotted(table, err.field), err.problem) from err


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_value(value: Any, kind: Any, field: str) -> Any:
    """``value`` checked against the type ``kind``; ints become floats where a float is due.

    Supported: ``int``, ``float``, ``str``, ``bool``, ``X | None``, tuples of numbers
    (``tuple[float, ...]``, ``tuple[float, float]``; the length is the caller's check) and of
    integers (``tuple[int, ...]``).
    """
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{field}: unsupported config type {kind!r}")
        return check_value(value, inner[0], field)
    if origin is tuple and args and args[0] is int:
        ints = isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        if not ints:
            raise ConfigError(field, f"must be a list of integers, got {value!r}")
        return tuple(value)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(_is_number(v) for v in value):
            raise ConfigError(field, f"must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(field, f"must be true or false, got {value!r}")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(field, f"must be an integer, got {value!r}")
        return value
    if kind is float:
        if not _is_number(value):
            raise ConfigError(field, f"must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(field, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"{field}: unsupported config type {kind!r}")


def check_types(raw: Any, table: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The table ``raw`` with every key known to ``schema`` (key -> type) and of its type."""
    checked = check_table(raw, table, schema)
    return {key: check_value(v, schema[key], dotted(table, key)) for key, v in checked.items()}


def dataclass_from_table(
    cls: type[T], raw: Any, table: str, base: T | None = None, **built: Any
) -> T:
    """An instance of the dataclass ``cls`` from the table ``raw`` at dotted path ``table``.

    The table may set any field whose type :func:`check_value` supports, except those given
    pre-built in ``built`` (nested tables the caller parsed itself). Fields left out keep the
    value of ``base`` (or the class default).
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    schema = {n: hints[n] for n in names if n not in built and supported(hints[n])}
    values = check_types(raw, table, schema)
    with keyed(table):
        try:
            if base is not None:
                return replace(base, **values, **built)  # type: ignore[type-var]
            return cls(**values, **built)
        except TypeError as err:  # a field the table cannot set, or a wrong type deep inside
            raise ConfigError(table or "config", str(err)) from err


def supported(kind: Any) -> bool:
    """Whether :func:`check_value` can check values of the type ``kind``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return len(inner) == 1 and supported(inner[0])
    if origin is tuple:
        return all(a in (float, int, Ellipsis) for a in args)
    return kind in (bool, int, float, str)


def config_with_flags(
    cls: type[T],
    path: str | Path | None,
    table: str,
    flags: Mapping[str, Any],
    others: Collection[str] = (),
) -> tuple[T, Mapping[str, Any]]:
    """The dataclass ``cls`` from the ``[table]`` of the file ``path``, with ``flags`` on top.

    Without a file the table is empty (the class defaults). ``flags`` maps field names to the
    command line's values, ``None`` for a flag not given; a given flag overrides the file and is
    checked like a key of the file, but named by its field (the flag's name). The file may hold
    only ``table`` and the tables named in ``others``, which are returned (raw) for their own
    packages' parsers.
    """
    raw = read_config(path) if path is not None else {}
    top = check_table(raw, "", (table, *others))
    base = dataclass_from_table(cls, top.get(table), table)
    given = {key: value for key, value in flags.items() if value is not None}
    return dataclass_from_table(cls, given, "", base=base), {
        key: value for key, value in top.items() if key != table
    }


def int_list(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` as ``(1, 2, 3)``: a command-line list (argparse reports a ValueError)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


def check_counts(instance: Any, *names: str) -> None:
    """Each named field of ``instance`` is a positive integer, or a non-empty tuple of them."""
    for name in names:
        value = getattr(instance, name)
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(v < 1 for v in values):
            raise ConfigError(name, f"must be positive integers, got {value!r}")


def check_seeds(seeds: tuple[int, ...], field: str = "seeds") -> None:
    """A non-empty list of distinct seeds >= 0 (numpy's generators need non-negative seeds)."""
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(field, f"needs distinct integers >= 0, got {list(seeds)!r}")


def provenance(
    script: str, argv: Sequence[str] | None, path: str | Path | None, **tables: Any
) -> dict[str, Any]:
    """The run's command line (``argv`` None: this process's), date (UTC), config file and
    resolved config, one entry per table (a dataclass instance or a mapping)."""
    args = sys.argv[1:] if argv is None else argv
    return {
        "command": " ".join(["python", script, *args]),
        "date": datetime.now(UTC).date().isoformat(),
        "config": None if path is None else str(path),
        "resolved_config": {
            name: asdict(table) if is_dataclass(table) else dict(table)  # type: ignore[arg-type]
            for name, table in tables.items()
        },
    }
