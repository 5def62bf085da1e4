"""One error type for the command line, the exit codes, and the one place that turns errors into a line on stderr.

Exit codes, the same for every command:

| code | meaning |
|---|---|
| 0 | done |
| 1 | an error: bad input, a missing file, a model that does not load, or every video failed |
| 2 | usage: an unknown option or a value an option does not take |
| 3 | some inputs failed: the others' results are written, the failures listed (and in the report) |
| 130 | interrupted (Ctrl-C): finished work is kept, the same command resumes |
| 141 | the reader of the output stopped (piped into `head`): nothing more is printed |
| 143 | terminated (SIGTERM: `kill`, `timeout`, Slurm, Kubernetes): the same as 130 |
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..errors import InputError, MissingDependencyError, as_flags

__all__ = [
    "DEBUG_VARIABLE",
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_SOME_FAILED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "CLIError",
    "SomeInputsFailed",
    "UsageError",
    "Terminated",
    "report_errors",
]

DEBUG_VARIABLE = "TIMESFORMER_HF_DEBUG"
EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 3, 130, 143
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell pipeline reports for a writer whose reader left


class CLIError(Exception):
    """A problem the user can fix, said in one line (what is wrong and what to do)."""


class UsageError(CLIError):
    """An unknown option or a value an option does not take (exit 2)."""


class SomeInputsFailed(Exception):
    """Some videos could not be read; the others' results are written (exit 3)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is as Ctrl-C is, so that finished work is kept on the way out."""


# The user's own errors: said in one line. Anything else is a bug, said as one (with where the traceback is).
_USER_ERRORS = (
    CLIError,
    InputError,
    MissingDependencyError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def _message(error: BaseException) -> str:
    """The error in one line, parameters written as flags."""
    if isinstance(error, InputError) and error.flag is not None:
        return f"{error.flag}: {as_flags(error.message)}"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return as_flags(" ".join(str(error).split())) or type(error).__name__


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def _log_parameters_as_flags() -> Any:
    """The package's log messages name parameters (`` `labels=` ``): on the command line they name flags."""
    make_record = logging.getLogRecordFactory()

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = make_record(*args, **kwargs)
        if made.name.startswith("timesformer_hf") and isinstance(made.msg, str):
            made.msg = as_flags(made.msg)
        return made

    logging.setLogRecordFactory(record)
    try:
        yield
    finally:
        logging.setLogRecordFactory(make_record)


def report_errors(
    command: Callable[[Any], int | None], args: Any, prog: str = "timesformer-hf", debug: bool = False
) -> int:
    """Run `command(args)` and return its exit code (see the module's table); a user's error becomes `prog: error:
    ...` on one line, an unexpected one a line that says so and where the traceback is (`--debug` or
    `TIMESFORMER_HF_DEBUG=1` raise it instead). SIGTERM stops the command as Ctrl-C does."""
    debug = debug or bool(os.environ.get(DEBUG_VARIABLE))
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with _log_parameters_as_flags():
            return command(args) or 0
    except UsageError as error:
        print(f"{prog}: error: {_message(error)}", file=sys.stderr)
        return EXIT_USAGE
    except (
        BrokenPipeError
    ):  # the reader of stdout stopped (piped into `head`): stop quietly, as other commands do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return EXIT_BROKEN_PIPE
    except SomeInputsFailed as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except Terminated:
        print(
            f"{prog}: terminated; finished work is kept: run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted; finished work is kept: run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except _USER_ERRORS as error:
        if debug:
            raise
        print(f"{prog}: error: {_message(error)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:
        if debug:
            raise
        print(
            f"{prog}: unexpected error: {type(error).__name__}: {_message(error)} (a bug: rerun with --debug, or "
            f"{DEBUG_VARIABLE}=1, for the traceback, and report it with the command that failed)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
