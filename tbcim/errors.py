"""Errors that name what is wrong with a user's input."""


class TbcimError(Exception):
    """Base class for errors the CLI reports as a clear message (exit status 2)."""


class ConfigError(TbcimError, ValueError):
    """A configuration value or input array is invalid; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
