"""One exception type for problems with the user's data, so the CLI can print it without a traceback."""


class DataError(Exception):
    """A problem with input data: the message names the file(s) and says how to fix it."""
