"""Output flags shared by every ``tbcim`` command, and old flag names kept for one release.

One meaning per flag: ``--out DIR`` is a run folder (a command that writes several files);
a single file is ``--json FILE``, ``--model FILE`` or ``--png FILE`` (a figure may write its data
beside it, under the same stem). A figure's seeds are ``--seeds 0,1,2`` (the old ``--seed N`` is
one seed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tbcim.configfile import int_list


class _DeprecatedFlag(argparse.Action):
    """Store the value under the new flag's ``dest`` and say on stderr that the flag is renamed."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        new: str,
        convert: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new
        self.convert = convert

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the "
            f"next release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, self.convert(values) if self.convert else values)


def output_file(
    parser: argparse.ArgumentParser,
    flag: str,
    help: str,
    *,
    required: bool = False,
    old: str | None = None,
    convert_old: Callable[[str], Any] | None = None,
    dest: str | None = None,
) -> None:
    """Add the single-file flag ``flag`` (``--model``, ``--json``, ``--png``).

    ``old`` is a deprecated name that still works (hidden from ``--help``); ``convert_old`` maps
    its value to a value of ``flag`` (e.g. a folder to the file inside it). With ``old``,
    ``required`` is enforced as "one of the two".
    """
    dest = dest or flag.lstrip("-").replace("-", "_")
    metavar = "FILE"
    if old is None:
        parser.add_argument(flag, dest=dest, required=required, metavar=metavar, help=help)
        return
    target = parser.add_mutually_exclusive_group(required=required)
    target.add_argument(flag, dest=dest, metavar=metavar, help=help)
    target.add_argument(
        old,
        dest=dest,
        action=_DeprecatedFlag,
        new=flag,
        convert=convert_old,
        help=argparse.SUPPRESS,
    )


def seeds_flag(parser: argparse.ArgumentParser, default: tuple[int, ...] = (0,)) -> None:
    """Add ``--seeds 0,1,2`` (dest ``seeds``, a tuple) and the deprecated ``--seed N`` (one seed).

    The handler checks the seeds with :func:`tbcim.configfile.check_seeds` (distinct, >= 0, at
    least one), so a bad list is a :class:`~tbcim.errors.ConfigError` naming ``seeds``.
    """
    shown = ",".join(map(str, default))
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds",
        type=int_list,
        default=default,
        metavar="S,S,...",
        help=f"seeds, comma-separated: several give the mean and std over seeds (default {shown})",
    )
    seeds.add_argument(
        "--seed",
        dest="seeds",
        type=int,
        action=_DeprecatedFlag,
        new="--seeds",
        convert=lambda seed: (seed,),
        help=argparse.SUPPRESS,
    )
