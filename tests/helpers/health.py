"""Waiting for an operator process's liveness endpoint (the one the chart's probes call)."""

import time
import urllib.request
from collections.abc import Callable


def wait_healthy(url: str, exited: Callable[[], bool], logs: Callable[[], str], timeout: float = 60) -> None:
    """Until `url` answers 200; fails at once, with the process's log, when it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not exited(), f"the operator exited:\n{logs()[-6000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the operator's liveness endpoint {url} never answered:\n{logs()[-6000:]}")
