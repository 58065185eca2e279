"""Real torchrun launches of the trainer for tests: one node, two "nodes" on this machine, and kills.

Every launch runs `torchrun … -m kubetune.trainer --config FILE` in its own process
group (so a test can SIGKILL the whole node like a lost pod), with one thread per
process so two-core CI machines stay usable.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.mlflow_server import free_port

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def trainer_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def standalone_command(config_path: Path, nproc: int = 1) -> list[str]:
    return [TORCHRUN, "--standalone", f"--nproc-per-node={nproc}", "-m", "kubetune.trainer", "--config", str(config_path)]


def node_command(config_path: Path, node_rank: int, nnodes: int, port: int, run_id: str) -> list[str]:
    """One "node" of a multi-node run: the c10d rendezvous on 127.0.0.1, one process per node."""
    return [
        TORCHRUN, f"--nnodes={nnodes}", f"--node-rank={node_rank}", "--nproc-per-node=1",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={run_id}",
        "-m", "kubetune.trainer", "--config", str(config_path),
    ]


def start(command: list[str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process by the caller's wait()
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=trainer_env(), start_new_session=True)


def run_standalone(config_path: Path, log_path: Path, nproc: int = 1, timeout: float = 300) -> int:
    process = start(standalone_command(config_path, nproc), log_path)
    return wait(process, timeout, log_path)


def run_nodes(config_path: Path, log_dir: Path, nnodes: int = 2, timeout: float = 300) -> list[int]:
    port = free_port()
    processes = [
        start(node_command(config_path, rank, nnodes, port, f"test-{port}"), Path(log_dir) / f"node{rank}.log")
        for rank in range(nnodes)
    ]
    return [wait(p, timeout, Path(log_dir) / f"node{i}.log") for i, p in enumerate(processes)]


def wait(process: subprocess.Popen, timeout: float, log_path: Path) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise AssertionError(f"torchrun did not finish in {timeout}s:\n{tail(log_path)}") from None


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL torchrun and every worker it started, like a node that disappears.

    torchrun puts its workers in sessions of their own, so killing torchrun's
    process group is not enough: every descendant is found first, then killed.
    """
    pids = [process.pid, *descendants(process.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def wait_for(predicate, timeout: float, process: subprocess.Popen | None = None, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"torchrun exited with {process.returncode} first:\n{tail(log_path)}")
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout}s:\n{tail(log_path) if log_path else ''}")


def tail(log_path: Path | None, chars: int = 6000) -> str:
    return Path(log_path).read_text(errors="replace")[-chars:] if log_path and Path(log_path).exists() else ""


def losses_by_step(metrics_file: Path) -> dict[int, float]:
    """Train loss per optimizer step from the trainer's metrics.jsonl; a step logged twice (a resume) keeps the last."""
    return metric_by_step(metrics_file, "loss")


def metric_by_step(metrics_file: Path, name: str) -> dict[int, float]:
    """One metric per optimizer step from the trainer's metrics.jsonl; a step logged twice keeps the last."""
    values = {}
    for line in Path(metrics_file).read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "metrics" and name in record:
            values[record["step"]] = record[name]
    return values
