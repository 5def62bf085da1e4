"""The package's own user-facing errors.

[`InputError`] is what the library raises for a value, file or folder that cannot work, in one sentence that says
the fix. It names the parameter at fault in its Python spelling (`argument`), so that the message makes sense from
Python; the command line shows the same error under its flag. It is a `ValueError`, so code that catches those
keeps working. [`MissingDependencyError`] says which extra to install.

Messages name other parameters as keyword arguments in backticks (`` `overwrite=True` ``, `` `labels=` ``), never
as flags; [`as_flags`] is how the command line shows them (`--overwrite`, `--labels`).

Example:

```python
>>> error = InputError("must be positive and finite, got nan (or drop `stride=`)", argument="window")
>>> str(error), error.flag
('window: must be positive and finite, got nan (or drop `stride=`)', '--window')
>>> as_flags(error.message)
'must be positive and finite, got nan (or drop --stride)'

```
"""

from __future__ import annotations

import re

__all__ = ["InputError", "MissingDependencyError", "as_flags", "flag_name"]

_KEYWORD = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)=([^`]*)`")


# Parameters whose flag is named otherwise (`--label-names` is one of `TrainingArguments`' own).
_FLAG_NAMES = {"label_names": "class_names"}


def flag_name(argument: str) -> str:
    """The command-line flag of a parameter: `batch_size` -> `--batch-size`."""
    return "--" + _FLAG_NAMES.get(argument, argument).replace("_", "-")


def as_flags(message: str) -> str:
    """`message` with its keyword arguments in backticks written as flags: `` `quantize='int8'` `` -> `--quantize
    int8`, `` `overwrite=True` `` -> `--overwrite`, `` `labels=` `` -> `--labels`."""

    def flag(match: re.Match) -> str:
        value = match.group(2).strip().strip("'\"")
        return flag_name(match.group(1)) + ("" if value in ("", "True") else f" {value}")

    return _KEYWORD.sub(flag, message)


class InputError(ValueError):
    """A value, file or folder given to the package that cannot work, with the fix.

    Args:
        message: What is wrong and what to do, without naming a command-line flag.
        argument: The parameter at fault (Python spelling, e.g. `"batch_size"`), if one is.
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        self.message = message
        self.argument = argument
        super().__init__(f"{argument}: {message}" if argument else message)

    @property
    def flag(self) -> str | None:
        """The command-line flag of `argument` (`--batch-size`)."""
        return None if self.argument is None else flag_name(self.argument)


class MissingDependencyError(ImportError):
    """An optional dependency a feature needs is not installed; the message says which extra brings it."""
