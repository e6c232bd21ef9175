"""The one error type for bad user input: the CLI prints it as one line and exits 2."""


class ClfbenchError(Exception):
    """A problem with the user's input (file, column, label, config, model name).

    The message must name the file, row or field so that the user can fix it.
    """

    exit_code = 2
