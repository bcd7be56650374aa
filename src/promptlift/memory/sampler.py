"""Peak memory of a block of code on CPU or CUDA: what `promptlift memory calibrate` and the memory benchmarks measure.

On CUDA torch's peak allocation (`max_memory_allocated`); on CPU its counterpart, the bytes malloc has handed out and
not had back (glibc's `mallinfo2`: in-use arena + mmapped chunks), sampled every 0.2 ms, with the resident set (RSS,
sampled alike after handing freed heap back to the OS) beside it.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

__all__ = ["PeakSampler", "allocated"]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):  # not glibc >= 2.33: only the resident set is measured
        return None


LIBC = _libc()


def allocated() -> int:
    """Bytes malloc has handed out and not had back (0 where glibc's mallinfo2 is missing)."""
    if LIBC is None:
        return 0
    info = LIBC.mallinfo2()
    return info.uordblks + info.hblkhd


def _trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so the step's own allocations show in the resident set."""
    import gc

    gc.collect()
    if LIBC is not None:  # elsewhere the resident set is noisier, not wrong
        LIBC.malloc_trim(0)


class PeakSampler:
    """Highest allocated bytes and resident set seen while the block runs, above their values before it (CPU)."""

    def __enter__(self):
        _trim()
        self.base = self.peak = (allocated(), _rss())
        self.stop = threading.Event()
        self.lock = threading.Lock()  # a reset between a sample's read and its write would be lost
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        with self.lock:
            self.peak = tuple(map(max, self.peak, (allocated(), _rss())))

    def _run(self):
        while not self.stop.is_set():
            self._sample()
            time.sleep(0.0002)

    def reset(self):
        """Start a new peak from the present (the base stays): the next phase's own peak."""
        with self.lock:
            self.peak = (allocated(), _rss())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._sample()

    @property
    def extra(self) -> tuple[int, int]:
        """(allocated, resident) bytes above the start."""
        return self.peak[0] - self.base[0], self.peak[1] - self.base[1]
