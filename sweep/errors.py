"""The errors ibsweep raises: one base class, and bad input that the command line reports
as one line with exit code 2."""


class IbsweepError(Exception):
    """Base of the errors ibsweep raises on purpose (catch this to catch them all)."""


class UsageError(IbsweepError, ValueError):
    """Bad input from the user: a one-line message saying what is wrong and what is allowed."""
