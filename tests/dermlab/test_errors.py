"""The user-facing message of a DataError (``dermlab/errors.py``)."""

from __future__ import annotations

from dermlab.errors import DataError, clean_message


def test_a_message_keeps_its_reason_and_its_command_and_loses_a_workers_traceback():
    message = "'runs/x' has no test of its own. Test it first:\n  dermlab test -c c.yaml --ckpt_path x.ckpt"
    assert clean_message(DataError(message)) == message
    folded = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
              '  File "x.py", line 1, in f\ndermlab.errors.DataError: ' + message)
    assert clean_message(DataError(folded)) == message
    assert clean_message(DataError("")) == "DataError"
