"""The error users see as one line and exit code 2."""


class UsageError(ValueError):
    """Bad input from the user: a one-line message saying what is wrong and what is allowed."""
