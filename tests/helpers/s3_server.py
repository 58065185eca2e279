"""A real S3-compatible server for tests: moto's server mode on loopback, a free port, one per session.

    s3_env  (session fixture) -> the environment a pod gets from its storage Secret (keys, endpoint, region),
                                 also set in this test process while the session runs

Everything reaches it the way the pods do: s3fs and delta-rs read AWS_* from the environment.
"""

import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.mlflow_server import free_port
from helpers.object_stores import environment

START_TIMEOUT_S = 60.0
BUCKET = "kubetune-tests"


def secret_env(endpoint: str) -> dict[str, str]:
    """The keys of a storage Secret for the server (moto accepts any key pair)."""
    return {
        "AWS_ACCESS_KEY_ID": "kubetune-test-key",
        "AWS_SECRET_ACCESS_KEY": "kubetune-test-secret",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",  # delta-rs: the loopback endpoint is plain http
    }


@contextlib.contextmanager
def running_s3_server(log_dir: Path) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; yields its endpoint URL. Retries on a port taken meanwhile."""
    for _ in range(5):
        port = free_port()
        log = open(log_dir / f"moto-{port}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        endpoint = f"http://127.0.0.1:{port}"
        if _wait_ready(endpoint, process):
            try:
                yield endpoint
            finally:
                process.terminate()
                process.wait(timeout=30)
                log.close()
            return
        process.kill()
        process.wait()
        log.close()
        if "address already in use" not in (log_dir / f"moto-{port}.log").read_text().lower():
            raise RuntimeError(f"moto server did not start: {(log_dir / f'moto-{port}.log').read_text()[-2000:]}")
    raise RuntimeError("moto server: no free port after 5 tries")


def _wait_ready(endpoint: str, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            return True
        except OSError:
            time.sleep(0.3)
    return False


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A running S3 server with the bucket BUCKET; its Secret's keys, also set in os.environ meanwhile."""
    with running_s3_server(tmp_path_factory.mktemp("moto")) as endpoint:
        env = secret_env(endpoint)
        with environment(env):
            import s3fs

            s3fs.S3FileSystem.clear_instance_cache()  # a client made before for another environment
            s3fs.S3FileSystem(skip_instance_cache=True).mkdir(BUCKET)
            yield env
