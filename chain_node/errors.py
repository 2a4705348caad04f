"""Errors raised by the chain node."""

from __future__ import annotations

from typing import Any

from tbcim.errors import TbcimError


class ChainError(TbcimError):
    """Base class for chain-node errors."""


class CompilerNotFoundError(ChainError):
    """No Solidity compiler could be resolved; the message says what to install."""


class CompilerError(ChainError):
    """The Solidity compiler rejected the sources."""


class ContractRevert(ChainError):
    """A transaction or call reverted; carries the decoded custom error (or reason string).

    ``error_name`` is the custom error's name (``"Error"`` for ``require`` reason strings,
    ``"Panic"`` for panics) and ``error_args`` its decoded arguments.
    """

    def __init__(self, contract: str, function: str, error_name: str, error_args: tuple[Any, ...]):
        shown = ", ".join(repr(a) for a in error_args)
        super().__init__(f"{contract}.{function} reverted: {error_name}({shown})")
        self.contract = contract
        self.function = function
        self.error_name = error_name
        self.error_args = error_args

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, e.g. out of a worker process
        return (type(self), (self.contract, self.function, self.error_name, self.error_args))
