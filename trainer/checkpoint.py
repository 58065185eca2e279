"""Sharded checkpoints that resume exactly, written in the layout of kubetune.api.checkpoints.

A checkpoint is a torch.distributed.checkpoint folder (model and optimizer shards, every
rank's RNG states, TrainingProgress as progress.json) that counts only once its COMPLETE
marker exists; `latest` then names it. Checkpoints are read without trusting them
(kubetune.trainer.checkpoint_reader): nothing in one can run code.
"""

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict, set_model_state_dict, set_state_dict

from kubetune.api.checkpoints import PROGRESS_FILE, RNG_FOLDER, checkpoint_name, mark_complete, point_latest
from kubetune.trainer.checkpoint_reader import VettedCheckpointReader, load_rng_state, read_vetted_metadata
from kubetune.trainer.distributed import DistributedEnv, barrier


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
    (path / RNG_FOLDER).mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), path / RNG_FOLDER / f"rank{env.rank}.pt")
    barrier()
    if env.is_main:
        (path / PROGRESS_FILE).write_text(json.dumps(asdict(progress), indent=2))
        mark_complete(path)
        point_latest(Path(run_dir), path.name)
    barrier()
    return path


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, env: DistributedEnv
) -> TrainingProgress:
    """Collective: restore model, optimizer and this rank's RNG; return the progress to continue from."""
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    read_vetted_metadata(path)
    dcp.load(state, storage_reader=VettedCheckpointReader(str(path)))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    rng_file = Path(path) / RNG_FOLDER / f"rank{env.rank}.pt"
    if rng_file.exists():  # absent when resuming on more ranks than saved: the data order does not depend on it
        restore_rng_state(load_rng_state(rng_file))
    return TrainingProgress(**json.loads((Path(path) / PROGRESS_FILE).read_text()))


def load_model_weights(path: Path, model: torch.nn.Module) -> None:
    """Collective: only the model from a checkpoint (customWeightsPath), resharded to this world size."""
    state = {"model": get_model_state_dict(model)}
    read_vetted_metadata(path)
    dcp.load(state, storage_reader=VettedCheckpointReader(str(path)))
    set_model_state_dict(model, state["model"])


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
