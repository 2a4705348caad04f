"""Output flags shared by every ``tbcim`` command, old flag names kept for one release, and the
engine flags of the commands that train (``tbcim fl run``, ``tbcim market run``).

One meaning per flag: ``--out DIR`` is a run folder (a command that writes several files);
a single file is ``--json FILE``, ``--model FILE`` or ``--png FILE`` (a figure may write its data
beside it, under the same stem). A figure's seeds are ``--seeds 0,1,2`` (the old ``--seed N`` is
one seed).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tbcim.configfile import int_list
from tbcim.errors import ConfigError

if TYPE_CHECKING:
    from tbcim.fl.flower.engine import FlowerOptions

ENGINES = ("local", "flower")
#: Ray CPUs of the Flower engine when --workers is not given.
DEFAULT_WORKERS = 2


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


def engine_flags(parser: argparse.ArgumentParser, engine_default: str | None = "local") -> None:
    """Add ``--engine local|flower`` and ``--workers N`` (issue 13; docs/fl.md, "The Flower
    engine"). ``engine_default=None`` lets a handler tell "not given" from ``local`` (a resumed
    run keeps the engine its folder recorded); :func:`flower_options` reads both flags."""
    shown = engine_default or "the run folder's, else local"
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=engine_default,
        help=f"local: every ED in this process; flower: the EDs as Flower clients on Flower's "
        f"Ray simulation runtime, each signing with its own key, the chain a JSON-RPC node "
        f"(anvil started by the run unless --rpc-url); default: {shown}",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"Ray CPUs of --engine flower: EDs that train at once (default {DEFAULT_WORKERS})",
    )


def flower_options(engine: str, workers: int | None, attack: str) -> FlowerOptions | None:
    """The Flower engine's options for ``--engine``/``--workers`` (None: the local engine),
    checked before any work: ``--workers`` is the Flower engine's and a positive integer, and
    the Flower engine can run the config's ``fl.attack`` (not ``copy``)."""
    if engine != "flower":
        if workers is not None:
            raise ConfigError(
                "--workers",
                f"sets the Flower engine's Ray CPUs; add --engine flower (the "
                f"{engine} engine trains every ED in this process)",
            )
        return None
    from tbcim.fl.flower.engine import FlowerOptions, check_flower_config

    options = FlowerOptions(workers=DEFAULT_WORKERS if workers is None else workers)
    check_flower_config(attack)
    return options


@contextlib.contextmanager
def engine_chain(rpc_url: str | None, flower: bool, servers: int) -> Iterator[str | None]:
    """The chain a run uses: the node at ``--rpc-url`` if given; for the Flower engine without
    one, an anvil node started here (a requester and ``servers`` ES accounts, each with
    ANVIL_BALANCE_ETHER: the requester funds every ED's own key) and stopped on exit; else
    None, the embedded chain (its EDs are the node's accounts)."""
    if rpc_url or not flower:
        yield rpc_url
        return
    from chain_node.anvil import running_anvil
    from tbcim.fl.flower.spec import ANVIL_BALANCE_ETHER

    with running_anvil("--balance", str(ANVIL_BALANCE_ETHER), accounts=1 + servers) as url:
        yield url
