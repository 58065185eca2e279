"""Sharded checkpoints that resume exactly, written in the layout of kubetune.api.checkpoints.

A checkpoint is a torch.distributed.checkpoint folder (model and optimizer shards, every
rank's RNG states, TrainingProgress as progress.json) that counts only once its COMPLETE
marker exists; `latest` then names it. Checkpoints are read without trusting them
(kubetune.trainer.checkpoint_reader): nothing in one can run code.

A save may run in the background (`start_checkpoint(..., background=True)`, DCP's async_save):
the state is copied to host memory before it returns, training goes on while a thread writes
it, and `finish_checkpoint` marks it complete only once that write has finished on every rank.
A process that dies meanwhile leaves a folder without the marker, which nothing reads.
"""

import json
import random
import shutil
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.staging import DefaultStager, StagingOptions
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


@dataclass
class PendingCheckpoint:
    """A checkpoint whose shards may still be being written; complete once `finish_checkpoint` returns."""

    run_dir: Path
    path: Path
    progress: dict  # TrainingProgress as it was when the save started
    write: Future | None = None  # None: written already (a blocking save)

    def written(self) -> bool:
        return self.write is None or self.write.done()


def save_checkpoint(
    run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, progress: TrainingProgress, env: DistributedEnv
) -> Path:
    """Collective: every rank writes its shards; rank 0 writes the progress, the marker, then moves `latest`."""
    path = finish_checkpoint(start_checkpoint(run_dir, model, optimizer, progress, env, background=False), env)
    barrier()
    return path


def start_checkpoint(
    run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, progress: TrainingProgress,
    env: DistributedEnv, background: bool,
) -> PendingCheckpoint:
    """Collective: this rank's RNG state written and its shards written (blocking) or staged in host memory
    and being written by a background thread. Nothing is marked complete here."""
    path = Path(run_dir) / checkpoint_name(progress.epochs_completed, progress.step)
    if env.is_main and path.exists():
        shutil.rmtree(path)  # an incomplete leftover of a killed attempt
    barrier()
    (path / RNG_FOLDER).mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), path / RNG_FOLDER / f"rank{env.rank}.pt")
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    pending = PendingCheckpoint(Path(run_dir), path, asdict(progress))
    if background:
        pending.write = dcp.async_save(
            state, checkpoint_id=str(path), process_group=_checkpoint_group(), async_stager=_host_stager()
        )
    else:
        dcp.save(state, checkpoint_id=str(path))
    return pending


def finish_checkpoint(pending: PendingCheckpoint, env: DistributedEnv) -> Path:
    """Wait for this rank's write; then rank 0 writes the progress, the COMPLETE marker and `latest`.

    Not a collective: rank 0's write ends only after DCP's coordinator has gathered every rank's written
    shards and written the metadata (each rank wrote its RNG state before its shards), so the marker
    never precedes any rank's data."""
    if pending.write is not None:
        pending.write.result()  # a failed write raises here: no marker
    if env.is_main:
        (pending.path / PROGRESS_FILE).write_text(json.dumps(pending.progress, indent=2))
        mark_complete(pending.path)
        point_latest(pending.run_dir, pending.path.name)
    return pending.path


_WRITER_GROUPS: dict = {}  # the default group -> its checkpoint writers' group
_HOST_STAGERS: list[DefaultStager] = []


def _host_stager() -> DefaultStager:
    """One host-memory stager per process. It keeps the host copy's buffers (weakly keyed by the tensors they
    copy) from one background save to the next, which then copies into them instead of allocating them
    again (0.1 s instead of 0.25 s per 400 MB here). Safe because a save starts only after the one before
    it has finished writing (the recipe's _finish_checkpoint)."""
    if not _HOST_STAGERS:
        _HOST_STAGERS.append(DefaultStager(StagingOptions(
            use_pinned_memory=False, use_shared_memory=False, use_async_staging=False, use_non_blocking_copy=False
        )))
    return _HOST_STAGERS[0]


def _checkpoint_group() -> "dist.ProcessGroup | None":
    """The background write's own gloo group (created collectively at the first background save of a process
    group): its collectives run on the writer thread and must never interleave with the training's."""
    if not dist.is_initialized():
        return None
    world = dist.group.WORLD
    if world not in _WRITER_GROUPS:
        _WRITER_GROUPS.clear()
        _WRITER_GROUPS[world] = dist.new_group(backend="gloo")
    return _WRITER_GROUPS[world]


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
