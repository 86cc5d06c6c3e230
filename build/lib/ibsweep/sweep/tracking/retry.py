"""Calls to the tracking store retried with exponential backoff while they fail transiently."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from mlflow.exceptions import MlflowException

DEFAULT_RETRY_S = 600.0


BACKOFF_FIRST_S = 0.5


BACKOFF_MAX_S = 10.0


_T = TypeVar("_T")


UNAVAILABLE = "tracking store unavailable"


class TrackingUnavailable(RuntimeError):
    """The tracking store did not take a call within the retry budget (or refused it)."""


def transient(err: BaseException) -> bool:
    """Whether a failed tracking call may succeed later (outage, timeout, 5xx, 429, lock)."""
    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        return status >= 500 or status == 429
    return isinstance(err, Exception)


def backoff(delay: float, deadline: float) -> float:
    """Sleep about ``delay`` seconds (with jitter), never past ``deadline``; the next delay."""
    time.sleep(max(0.0, min(delay * random.uniform(0.5, 1.0), deadline - time.monotonic())))
    return min(delay * 2, BACKOFF_MAX_S)


def call_with_retry(fn: Callable[[], _T], retry_s: float, what: str) -> _T:
    """``fn()``, retried with exponential backoff while it fails transiently, for ``retry_s``."""
    deadline, delay = time.monotonic() + retry_s, BACKOFF_FIRST_S
    while True:
        try:
            return fn()
        except Exception as err:
            if not transient(err) or time.monotonic() >= deadline:
                raise TrackingUnavailable(
                    f"{UNAVAILABLE}: {what} failed for {retry_s:g} s: {one_line(err)}"
                ) from err
            delay = backoff(delay, deadline)


def one_line(err: BaseException) -> str:
    """A short reason: MLflow's text of a connection failure is a paragraph of urllib3."""
    import requests

    for e in (err, err.__cause__, err.__context__):
        if isinstance(e, requests.exceptions.Timeout):
            return "timed out"
        if isinstance(e, requests.exceptions.ConnectionError):
            return "no connection"
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]
