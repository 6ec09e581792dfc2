"""Termination signals as an exception, so an interrupted write unwinds and cleans up.

By default SIGTERM and SIGHUP end a Python process on the spot: no ``finally``
runs, and a preset being written leaves its staging directory behind. Inside
``signals_raise`` they, and SIGINT, raise ``Interrupted`` in the main thread
instead, as Ctrl-C raises ``KeyboardInterrupt``, so every writer on the stack
discards what it staged (``preset.writing``). The command line uses it; a
library user may too, or keep their own handlers: nothing is installed on import.
"""

import contextlib
import signal
import threading

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(BaseException):
    """A termination signal arrived; ``exit_status`` is the shell's convention for it, 128 + its number.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so ``except Exception`` never swallows it.
    """

    def __init__(self, signum):
        self.signum = signum
        self.exit_status = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def _interrupt(signum, frame):
    # A second signal must not cut the clean-up of the first short: it is ignored
    # until the block ends (SIGKILL still ends the process; the next writer then tidies up).
    for other in SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise():
    """Within the block, SIGINT, SIGTERM and SIGHUP raise ``Interrupted``; the previous handlers come back after.

    A signal already ignored stays ignored (``nohup`` ignores SIGHUP, a shell's
    background job SIGINT). Only the main thread can handle signals: elsewhere
    this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s, handler in previous.items():
        if handler != signal.SIG_IGN:
            signal.signal(s, _interrupt)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
