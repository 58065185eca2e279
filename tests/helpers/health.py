"""The servers the tests start as processes (the operator, MLflow servers, `mlflow models serve`, the object
stores' emulators): waiting for one to answer on its health URL, and stopping it."""

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def wait_healthy(
    url: str, exited: Callable[[], bool], logs: Callable[[], str], timeout: float = 60, what: str = "the operator",
    any_answer: bool = False,
) -> None:
    """Until `url` answers 200 (with `any_answer`, any HTTP status: a server that refuses an unsigned request is
    up); fails at once, with the process's log, when it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not exited(), f"{what} exited:\n{logs()[-6000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            if any_answer:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} never answered at {url} within {timeout:g} s:\n{logs()[-6000:]}")


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after `timeout`; to the whole process group when it leads one (start_new_session)."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid) == process.pid

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig) if group else process.send_signal(sig)

    send(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()
