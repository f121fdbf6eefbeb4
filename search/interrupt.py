"""Ctrl-C and SIGTERM end a search as *interrupted*, never as finished.

Why our own handlers: Ray Tune's SIGINT handler ends ``Tuner.fit`` normally, so an interrupted
search used to be recorded as FINISHED, with its running trials "stopped", and could not be
resumed. Here the first SIGINT or SIGTERM only sets a flag: the Ray Tune backend sees it
through a ``Stopper`` and returns within a few seconds (Tune force-kills trials after 5 s, so a
hung trainer does not hold it up), other backends get :class:`SearchInterrupted` raised in
the main thread. ``run_search`` then closes open trial runs as ``interrupted``, ends the parent
run KILLED with the tag ``jointsearch.interrupted``, and the CLI exits 128 + signal number
(130 for SIGINT, 143 for SIGTERM). ``--resume`` continues the search.

A second signal while that clean-up runs exits at once (``os._exit``): whatever was not
recorded looks like a crash, which ``--resume`` also continues.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SearchInterrupted(KeyboardInterrupt):
    """A search ended by a signal; ``exit_code`` is the shell's convention, 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class InterruptGuard:
    """What the signal handlers saw; ``raise_now`` makes the first signal raise at once."""

    def __init__(self, raise_now: bool = False):
        self.raise_now = raise_now
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def handle(self, signum: int, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.signum is not None:
            os.write(2, f"jointsearch: {signal.Signals(signum).name} again; exiting now without "
                        f"clean-up (`--resume` continues the search)\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        os.write(2, f"jointsearch: {signal.Signals(signum).name} received; ending the search as interrupted "
                    f"(press Ctrl-C again to exit at once)\n".encode())
        if self.raise_now:
            raise SearchInterrupted(signum)

    def check(self) -> None:
        """Raise :class:`SearchInterrupted` if a signal arrived (after a backend returned)."""
        if self.signum is not None:
            raise SearchInterrupted(self.signum)


@contextmanager
def interruptible(raise_now: bool = False) -> Iterator[InterruptGuard]:
    """Install the handlers for the duration of a search (main thread only: elsewhere Python
    cannot install handlers, and the guard just never fires), then restore the previous ones."""
    guard = InterruptGuard(raise_now)
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, guard.handle)
    try:
        yield guard
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
