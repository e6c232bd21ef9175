"""The one error type for bad user input: the CLI prints it as one line and exits 2."""


class ClfbenchError(Exception):
    """A problem with the user's input (file, column, label, config, model name).

    The message must name the file, row or field so that the user can fix it.
    """

    exit_code = 2


class WriteFailed(ClfbenchError):
    """A file could not be written (the disk is full, a quota, a read-only mount): not the
    user's input, so exit 1, but still one line naming the folder, and nothing half-written."""

    exit_code = 1
