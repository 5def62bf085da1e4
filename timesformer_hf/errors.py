"""The package's own user-facing errors.

[`InputError`] is what the library raises for a value, file or folder that cannot work, in one sentence that says
the fix. It names the parameter at fault in its Python spelling (`argument`), so that the message makes sense from
Python; the command line shows the same error under its flag. It is a `ValueError`, so code that catches those
keeps working. [`MissingDependencyError`] says which extra to install.

Example:

```python
>>> error = InputError("must be positive and finite, got nan", argument="window")
>>> str(error), error.flag
('window: must be positive and finite, got nan', '--window')

```
"""

from __future__ import annotations

__all__ = ["InputError", "MissingDependencyError"]


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
        return None if self.argument is None else "--" + self.argument.replace("_", "-")


class MissingDependencyError(ImportError):
    """An optional dependency a feature needs is not installed; the message says which extra brings it."""
