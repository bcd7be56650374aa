"""Reading ahead in a background thread while the caller runs a model."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")
R = TypeVar("R")


def prefetch(items: Iterable[T], fn: Callable[[T], R], depth: int = 128) -> Iterator[R]:
    """`fn(item)` for every item, in order, computed by a background thread up to `depth` items ahead.

    For reading and decoding (PIL and file I/O release the GIL) while the caller runs a model. An exception in
    the thread is raised in the caller at the item that caused it; leaving the loop early stops the thread.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((True, fn(item)))
        except BaseException as e:  # handed to the caller, raised there
            q.put((False, e))
        q.put((True, done))

    thread = threading.Thread(target=work, name="promptlift-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = q.get()
            if not ok:
                raise value
            if value is done:
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)
