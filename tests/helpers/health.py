"""Waiting for a process the tests started to answer on its health URL (the operator's liveness endpoint the
chart's probes call, an MLflow server, `mlflow models serve`)."""

import time
import urllib.request
from collections.abc import Callable


def wait_healthy(
    url: str, exited: Callable[[], bool], logs: Callable[[], str], timeout: float = 60, what: str = "the operator"
) -> None:
    """Until `url` answers 200; fails at once, with the process's log, when it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not exited(), f"{what} exited:\n{logs()[-6000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} never answered at {url} within {timeout:g} s:\n{logs()[-6000:]}")
