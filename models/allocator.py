"""glibc's allocator tuned for the training loop: an opt-in setting of the whole process."""

from __future__ import annotations

import ctypes
import functools

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters of glibc's malloc.h


@functools.cache
def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed blocks of up to 32 MiB for reuse (once per process).

    By default glibc maps blocks above a moving threshold afresh on every allocation and unmaps
    them when freed, so each epoch's activations and each batch's temporaries are faulted in
    page by page again: on a VM that costs several microseconds per 4 KiB, milliseconds per
    epoch, often more than the arithmetic. A fixed threshold keeps them in the heap instead;
    memory use stays bounded by the peak. Other C libraries are left alone.

    A setting of the whole process: the command line and each trial's worker opt in; library
    code never calls it.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):
        pass
