"""One exception for bad input, so the CLI can print a single clear line instead of a traceback."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used: the message names the file or column and the fix.

    Messages are kept to one line so they survive being re-raised from DataLoader workers.
    """


def clean_message(error: BaseException) -> str:
    """The user-facing line of a DataError, also when a DataLoader worker re-raised it.

    PyTorch re-raises worker exceptions with the worker traceback folded into the message;
    the original message is then the last line, after ``dermlab.errors.DataError:`` and a space.
    """
    text = str(error).strip()
    last = text.splitlines()[-1] if text else type(error).__name__
    marker = "DataError: "
    return last.split(marker, 1)[1] if marker in last else last
