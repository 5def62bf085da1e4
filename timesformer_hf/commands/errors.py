"""One error type for the command line, and the one place that turns known errors into a line on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["CLIError", "report_errors"]

DEBUG_VARIABLE = "TIMESFORMER_HF_DEBUG"


class CLIError(Exception):
    """A problem the user can fix, said in one line (what is wrong and what to do)."""


def _known_errors() -> tuple[type[BaseException], ...]:
    # problems with the input, the files or the installation; anything else is a bug and keeps its traceback
    return (CLIError, ValueError, OSError, ImportError, KeyError)


def report_errors(command: Callable[[Any], int | None], args: Any, prog: str = "timesformer-hf") -> int:
    """Run `command(args)`; a known error becomes `prog: error: ...` on one line and exit status 1.

    Set `TIMESFORMER_HF_DEBUG=1` to see the traceback instead.
    """
    try:
        return command(args) or 0
    except _known_errors() as error:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        message = " ".join(
            str(error.args[0] if isinstance(error, KeyError) and error.args else error).split()
        )
        print(f"{prog}: error: {message or type(error).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
