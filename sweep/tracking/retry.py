"""Calls to the tracking store retried with exponential backoff while they fail transiently."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException

from ibsweep.sweep.errors import IbsweepError

DEFAULT_RETRY_S = 600.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
UNAVAILABLE = "tracking store unavailable"
_T = TypeVar("_T")
# what an outage, a slow server or a busy SQLite file raise on the way to MLflow
_TRANSIENT_ERRORS = (
    ConnectionError,  # also refused and reset connections
    TimeoutError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)


class TrackingUnavailable(IbsweepError, RuntimeError):
    """The tracking store did not take a call within the retry budget (or refused it)."""


def _locked(err: BaseException) -> bool:
    """Whether ``err`` is SQLite saying another writer holds the database."""
    if isinstance(err, sqlalchemy.exc.OperationalError):
        err = err.orig or err
    return isinstance(err, sqlite3.OperationalError) and "locked" in str(err).lower()


def transient(err: BaseException) -> bool:
    """Whether a failed tracking call may succeed later: an outage, a timeout, a 5xx or 429
    answer, a locked SQLite database. Anything else (a refusal, a bug) fails at once."""
    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        return status >= 500 or status == 429
    return isinstance(err, _TRANSIENT_ERRORS) or _locked(err)


def backoff(delay: float, deadline: float) -> float:
    """Sleep about ``delay`` seconds (with jitter), never past ``deadline``; the next delay."""
    time.sleep(max(0.0, min(delay * random.uniform(0.5, 1.0), deadline - time.monotonic())))
    return min(delay * 2, BACKOFF_MAX_S)


def call_with_retry(fn: Callable[[], _T], retry_s: float, what: str) -> _T:
    """``fn()``, retried with exponential backoff while it fails transiently, for ``retry_s``.

    A store that stays away or refuses the call raises TrackingUnavailable; any other error
    (a bug, not the store) is raised as it is, at once.
    """
    deadline, delay = time.monotonic() + retry_s, BACKOFF_FIRST_S
    while True:
        try:
            return fn()
        except Exception as err:
            if transient(err) and time.monotonic() < deadline:
                delay = backoff(delay, deadline)
                continue
            if not (transient(err) or isinstance(err, MlflowException)):
                raise
            raise TrackingUnavailable(
                f"{UNAVAILABLE}: {what} failed for {retry_s:g} s: {one_line(err)}"
            ) from err


def one_line(err: BaseException) -> str:
    """A short reason: MLflow's text of a connection failure is a paragraph of urllib3."""
    for e in (err, err.__cause__, err.__context__):
        if isinstance(e, requests.exceptions.Timeout):
            return "timed out"
        if isinstance(e, requests.exceptions.ConnectionError):
            return "no connection"
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]
