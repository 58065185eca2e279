"""Wake-ups: decide a run again when a wait it chose ends (a restart backoff), not at the next timer tick.

kopf's timers tick at a fixed interval per run; a backoff ends whenever it ends. One pending wake-up per
run: a newer one replaces it. Timers are daemon threads, so a stopping operator does not wait for them;
one lost in a restart is made up by the resync timer.
"""

import threading
from collections.abc import Callable

RunKey = tuple[str, str]  # (namespace, name)


class Wakeups:
    def __init__(self, wake: Callable[[RunKey], None]):
        self._wake = wake
        self._timers: dict[RunKey, threading.Timer] = {}
        self._guard = threading.Lock()

    def schedule(self, run: RunKey, delay_s: float) -> None:
        timer = threading.Timer(delay_s, self._fire, args=(run,))
        timer.daemon = True
        with self._guard:
            previous = self._timers.pop(run, None)
            if previous is not None:
                previous.cancel()
            self._timers[run] = timer
        timer.start()

    def pending(self) -> set[RunKey]:
        with self._guard:
            return set(self._timers)

    def _fire(self, run: RunKey) -> None:
        with self._guard:
            if self._timers.get(run) is threading.current_thread():
                del self._timers[run]
        self._wake(run)
