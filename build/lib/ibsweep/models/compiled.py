"""The few hot loops compiled with numba, cached on disk where a writable folder exists."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


def compile_loop(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """``fn`` compiled without the GIL (cached on disk if numba can); None without numba."""
    try:
        import numba
    except ImportError:
        return None
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache folder (read-only install, no home): compile only
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return numba.njit(nogil=True)(fn)
