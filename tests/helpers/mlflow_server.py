"""A real MLflow tracking server for tests: SQLite backend, local artifact root, a free port.

Every layer's tests share one server through the session fixture `mlflow_uri` (this module is a
pytest plugin, registered by tests/conftest.py). Directly:

    with running_mlflow_server(tmp_path) as uri:
        client = mlflow.MlflowClient(uri)

The server runs as a subprocess of the test session (`mlflow server`, one worker);
its log goes to TMP/mlflow-server.log, which the error shows when it fails to start.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.health import stop, wait_healthy

START_TIMEOUT_S = 120.0  # the first start migrates the SQLite schema; on a busy 2-core machine that takes a while


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    """The URI of the session's one real MLflow tracking server (SQLite backend)."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def logged_export(uri: str, folder: Path, tags: dict[str, str]) -> tuple[str, str]:
    """What the trainer leaves behind: an MLflow run tagged with its FineTuneRun's identity
    (kubetune.api.mlflow_tags.run_tags), with an exported model folder as its artifact `model`.
    Returns (MLflow run id, the export's artifact URI)."""
    import mlflow

    (folder / "export").mkdir()
    (folder / "export" / "config.json").write_text('{"model_type": "llama"}')
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment(f"/Users/test/{folder.name}"), tags=tags)
    client.log_artifacts(run.info.run_id, str(folder / "export"), "model")
    client.set_terminated(run.info.run_id)
    return run.info.run_id, f"{run.info.artifact_uri}/model"


@contextlib.contextmanager
def hung_server(lifetime_s: float = 120) -> Iterator[str]:
    """An HTTP URI on loopback whose server accepts connections and never answers (a hung MLflow).
    Connections are held until the context ends or `lifetime_s` passes."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        listener.settimeout(0.2)
        deadline = time.monotonic() + lifetime_s
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mlflow_executable() -> list[str]:
    """`mlflow` from the same environment as the running Python."""
    script = Path(sys.executable).with_name("mlflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


@contextlib.contextmanager
def running_mlflow_server(workdir: Path, port: int | None = None, serve_artifacts: bool = False) -> Iterator[str]:
    """Start `mlflow server` on 127.0.0.1 (on `port`, else a free one), wait for /health, yield its URI, stop
    it. Started again on the same folder and port, it is the same server back (SQLite store, artifacts).
    `serve_artifacts`: clients upload artifacts to it over HTTP (`--serve-artifacts`, as hack/kind/mlflow.yaml
    runs it) instead of writing its artifact folder themselves."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [
        *mlflow_executable(),
        "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        *(["--artifacts-destination", str(workdir / "artifacts"), "--serve-artifacts"] if serve_artifacts
          else ["--default-artifact-root", str(workdir / "artifacts")]),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]
    log_path = workdir / "mlflow-server.log"
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_path, "wb") as log:
        # A new session so the server's gunicorn/uvicorn workers stop with it.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_healthy(f"{uri}/health", lambda: process.poll() is not None, lambda: log_path.read_text(),
                     timeout=START_TIMEOUT_S, what="the mlflow server")
        yield uri
    finally:
        stop(process)
