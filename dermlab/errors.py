"""One exception for bad input, so the CLI can print a single clear line instead of a traceback."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used: the message names the file or column and the fix.

    Messages are kept to one line so they survive being re-raised from DataLoader workers.
    """


def clean_message(error: BaseException) -> str:
    """The user-facing message of a DataError (all its lines: a reason, then a command to run), also when a
    DataLoader worker re-raised it.

    PyTorch re-raises worker exceptions with the worker traceback folded into the message; the original message
    then follows the traceback's last ``DataError:`` and a space.
    """
    text = str(error).strip()
    if not text:
        return type(error).__name__
    marker = "DataError: "
    if "Traceback (most recent call last)" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text
