"""Sharded checkpoints that resume exactly, and the `latest` pointer.

Layout of a run's checkpoint folder:

    <checkpoint_root>/<run>/checkpoints/
        ep1-ba5/                 a torch.distributed.checkpoint folder (model + optimizer shards)
            .metadata, __*_*.distcp
            rng/rank{R}.pt       every rank's RNG states
            progress.json        TrainingProgress: step, epoch, sampler position, tokens, scheduler
            COMPLETE             written last: only complete checkpoints count
        latest                   a one-line file naming the newest complete checkpoint (atomic os.replace)

`ep{E}-ba{B}` names the checkpoint by epochs completed (E) and optimizer steps done (B).
"""

import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict, set_model_state_dict, set_state_dict

from kubetune.trainer.config import run_checkpoint_dir
from kubetune.trainer.distributed import DistributedEnv, barrier

COMPLETE_MARKER = "COMPLETE"
LATEST = "latest"
PROGRESS_FILE = "progress.json"
_NAME = re.compile(r"^ep(?P<epoch>\d+)-ba(?P<step>\d+)$")


class CheckpointNotFoundError(FileNotFoundError):
    """customWeightsPath (or a resume) names no complete checkpoint; a user error, not a transient fault."""


@dataclass
class TrainingProgress:
    """Everything besides tensors that a resumed run needs to continue the same loss curve."""

    step: int = 0  # optimizer steps done
    epochs_completed: int = 0
    sampler: dict[str, int] = field(default_factory=lambda: {"epoch": 0, "step_in_epoch": 0})
    tokens_seen: int = 0
    scheduler: dict = field(default_factory=dict)
    total_steps: int | None = None
    world_size: int = 1
    seed: int = 0


def checkpoint_name(epochs_completed: int, step: int) -> str:
    return f"ep{epochs_completed}-ba{step}"


def parse_checkpoint_name(name: str) -> tuple[int, int] | None:
    """(epochs completed, step) for an `ep{E}-ba{B}` name, else None."""
    m = _NAME.match(name)
    return (int(m["epoch"]), int(m["step"])) if m else None


def is_complete(path: Path) -> bool:
    return (Path(path) / COMPLETE_MARKER).is_file()


def save_checkpoint(
    run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, progress: TrainingProgress, env: DistributedEnv
) -> Path:
    """Collective: every rank writes its shards; rank 0 writes the progress, the marker, then moves `latest`."""
    path = Path(run_dir) / checkpoint_name(progress.epochs_completed, progress.step)
    if env.is_main and path.exists():
        shutil.rmtree(path)  # an incomplete leftover of a killed attempt
    barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(path))
    (path / "rng").mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), path / "rng" / f"rank{env.rank}.pt")
    barrier()
    if env.is_main:
        (path / PROGRESS_FILE).write_text(json.dumps(asdict(progress), indent=2))
        (path / COMPLETE_MARKER).write_text("")
        point_latest(Path(run_dir), path.name)
    barrier()
    return path


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, env: DistributedEnv
) -> TrainingProgress:
    """Collective: restore model, optimizer and this rank's RNG; return the progress to continue from."""
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    rng_file = Path(path) / "rng" / f"rank{env.rank}.pt"
    if rng_file.exists():  # absent when resuming on more ranks than saved: the data order does not depend on it
        restore_rng_state(torch.load(rng_file, weights_only=False))
    return TrainingProgress(**json.loads((Path(path) / PROGRESS_FILE).read_text()))


def load_model_weights(path: Path, model: torch.nn.Module) -> None:
    """Collective: only the model from a checkpoint (customWeightsPath), resharded to this world size."""
    state = {"model": get_model_state_dict(model)}
    dcp.load(state, checkpoint_id=str(path))
    set_model_state_dict(model, state["model"])


def point_latest(run_dir: Path, name: str) -> None:
    """Atomically make `latest` name `name`: write a temp file, then os.replace (atomic on POSIX)."""
    temp = run_dir / f".{LATEST}.tmp"
    temp.write_text(name + "\n")
    os.replace(temp, run_dir / LATEST)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None when it has none."""
    pointer = Path(run_dir) / LATEST
    if not pointer.is_file():
        return None
    path = Path(run_dir) / pointer.read_text().strip()
    return path if is_complete(path) else None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not Path(run_dir).is_dir():
        return []
    found = [p for p in Path(run_dir).iterdir() if parse_checkpoint_name(p.name) and is_complete(p)]
    return sorted(found, key=lambda p: parse_checkpoint_name(p.name)[1])  # type: ignore[index]


def resolve_custom_weights(value: str, checkpoint_root: Path, pvc_mount_root: Path) -> Path:
    """customWeightsPath → a complete checkpoint folder.

    Accepts a checkpoint folder (…/ep2-ba300), a run's `latest` file, a run's
    checkpoints folder, or an earlier run's name (looked up under checkpoint_root).
    """
    candidates = [_local_path(value, pvc_mount_root)]
    if "/" not in value:
        candidates.append(run_checkpoint_dir(checkpoint_root, value))
    for candidate in candidates:
        resolved = _checkpoint_at(candidate)
        if resolved is not None:
            return resolved
    raise CheckpointNotFoundError(
        f"spec.customWeightsPath: {value!r} names no complete checkpoint (a folder like ep2-ba300 with a "
        f"{COMPLETE_MARKER} marker, a run's `latest`, or an earlier run's name under {checkpoint_root})"
    )


def _local_path(value: str, pvc_mount_root: Path) -> Path:
    if value.startswith("pvc://"):
        return Path(pvc_mount_root) / value.removeprefix("pvc://")
    return Path(value.removeprefix("file://"))


def _checkpoint_at(path: Path) -> Path | None:
    if path.name == LATEST and path.is_file():
        return latest_checkpoint(path.parent)
    if path.is_dir() and is_complete(path):
        return path
    if path.is_dir():
        return latest_checkpoint(path)
    return None


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
