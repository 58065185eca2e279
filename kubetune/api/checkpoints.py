"""The checkpoint and export layout on the checkpoint volume, shared by the trainer (which writes
it), the operator (which mounts it and names it in status) and local mode.

    <checkpoint_root>/<run>/checkpoints/
        ep1-ba5/                 a torch.distributed.checkpoint folder (model + optimizer shards)
            .metadata, __*_*.distcp
            rng/rank{R}.pt       every rank's RNG states
            progress.json        TrainingProgress: step, epoch, sampler position, tokens, scheduler
            COMPLETE             written last: only complete checkpoints count
        latest                   a one-line file naming the newest complete checkpoint (atomic os.replace)
    <output_root>/<run>/export/        the final Hugging Face export
    <output_root>/<run>/metrics.jsonl  rank 0's metrics, appended across restarts

`ep{E}-ba{B}` names the checkpoint by epochs completed (E) and optimizer steps done (B).
Only the standard library: the operator reads this without torch.
"""

import os
import re
from pathlib import Path

from kubetune.api.locations import PVC_MOUNT_ROOT, parse_custom_weights

COMPLETE_MARKER = "COMPLETE"
LATEST = "latest"
PROGRESS_FILE = "progress.json"
RNG_FOLDER = "rng"
CHECKPOINTS_FOLDER = "checkpoints"
EXPORT_FOLDER = "export"
METRICS_FILE = "metrics.jsonl"
_NAME = re.compile(r"^ep(?P<epoch>\d+)-ba(?P<step>\d+)$")


class CheckpointNotFoundError(FileNotFoundError):
    """customWeightsPath (or a resume) names no complete checkpoint; a user error, not a transient fault."""


def run_checkpoint_dir(checkpoint_root: Path | str, run_name: str) -> Path:
    return Path(checkpoint_root) / run_name / CHECKPOINTS_FOLDER


def run_output_dir(output_root: Path | str, run_name: str) -> Path:
    return Path(output_root) / run_name


def checkpoint_name(epochs_completed: int, step: int) -> str:
    return f"ep{epochs_completed}-ba{step}"


def parse_checkpoint_name(name: str) -> tuple[int, int] | None:
    """(epochs completed, step) for an `ep{E}-ba{B}` name, else None."""
    m = _NAME.match(name)
    return (int(m["epoch"]), int(m["step"])) if m else None


def is_complete(path: Path) -> bool:
    return (Path(path) / COMPLETE_MARKER).is_file()


def mark_complete(path: Path) -> None:
    """The last write of a checkpoint: before it, the folder does not count as a checkpoint."""
    (Path(path) / COMPLETE_MARKER).write_text("")


def point_latest(run_dir: Path, name: str) -> None:
    """Atomically make `latest` name `name`: write a temp file, then os.replace (atomic on POSIX)."""
    temp = Path(run_dir) / f".{LATEST}.tmp"
    temp.write_text(name + "\n")
    os.replace(temp, Path(run_dir) / LATEST)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint `latest` names, or None when the run has none. Should `latest` name a folder without
    its COMPLETE marker (storage that does not keep the order of writes, a hand edit), the newest complete
    checkpoint is used instead of starting over."""
    pointer = Path(run_dir) / LATEST
    if not pointer.is_file():
        return None
    path = Path(run_dir) / pointer.read_text().strip()
    if is_complete(path):
        return path
    complete = list_checkpoints(run_dir)
    return complete[-1] if complete else None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not Path(run_dir).is_dir():
        return []
    found = [p for p in Path(run_dir).iterdir() if parse_checkpoint_name(p.name) and is_complete(p)]
    return sorted(found, key=lambda p: parse_checkpoint_name(p.name)[1])  # type: ignore[index]


def custom_weights_path(value: str, checkpoint_root: Path | str, pvc_mount_root: Path | str = PVC_MOUNT_ROOT) -> Path:
    """Where a customWeightsPath is on this machine or pod: an earlier run's `latest` for a run name,
    the mount point for pvc://, the path itself for a local path."""
    location = parse_custom_weights(value)
    if location.kind == "run_name":
        return run_checkpoint_dir(checkpoint_root, value) / LATEST
    if location.kind == "object_store":  # copied once to a local staging folder (kubetune.api.object_store)
        from kubetune.api.object_store import ObjectStoreError, stage_folder

        try:
            return stage_folder(_object_store_checkpoint(value))
        except ObjectStoreError as error:
            raise CheckpointNotFoundError(f"spec.customWeightsPath: {error}") from None
    return location.local_path(pvc_mount_root)  # type: ignore[return-value]


def _object_store_checkpoint(uri: str) -> str:
    """The checkpoint a customWeightsPath on an object store names, read as a local one is: a checkpoint folder
    (with COMPLETE), a run's `latest` file, or the folder holding `latest`."""
    from kubetune.api.object_store import ObjectStoreError, filesystem, read_error, read_errors

    fs, path = filesystem(uri)
    path = path.rstrip("/")
    try:
        if path.rsplit("/", 1)[-1] == LATEST and fs.isfile(path):
            path = f"{path.rsplit('/', 1)[0]}/{fs.cat_file(path).decode().strip()}"
        elif fs.isdir(path) and not fs.exists(f"{path}/{COMPLETE_MARKER}") and fs.isfile(f"{path}/{LATEST}"):
            path = f"{path}/{fs.cat_file(f'{path}/{LATEST}').decode().strip()}"
        complete = fs.exists(f"{path}/{COMPLETE_MARKER}")
    except read_errors() as error:
        raise read_error(uri, error) from None
    if not complete:
        raise ObjectStoreError(
            f"{uri}: no complete checkpoint there (a folder like ep2-ba300 with a {COMPLETE_MARKER} marker, or a run's `{LATEST}`)"
        )
    return fs.unstrip_protocol(path)


def resolve_custom_weights(
    value: str,
    checkpoint_root: Path | str,
    pvc_mount_root: Path | str = PVC_MOUNT_ROOT,
    *,
    tracking_uri: str | None = None,
    namespace: str = "default",
) -> Path:
    """customWeightsPath → a complete checkpoint folder: the folder itself (…/ep2-ba300), a run's
    `latest` file, a run's checkpoints folder (its latest), an earlier run's name, or a checkpoint an MLflow
    run lists (runs:/…, asked of `tracking_uri`; only runs of `namespace`). A bare name that is also a folder
    where the process runs (local mode: `ep2-ba300`) is that folder."""
    location = parse_custom_weights(value)
    if location.kind == "mlflow_run":
        from kubetune.api.mlflow_checkpoints import CheckpointReferenceError, referenced_run  # imports mlflow

        try:
            run_name = referenced_run(location, tracking_uri, namespace)
        except CheckpointReferenceError as error:
            raise CheckpointNotFoundError(str(error)) from None
        path = run_checkpoint_dir(checkpoint_root, run_name) / (location.name or LATEST)
    else:
        path = custom_weights_path(value, checkpoint_root, pvc_mount_root)
    resolved = _checkpoint_at(Path(value)) if location.kind == "run_name" else None
    resolved = resolved or _checkpoint_at(path)
    if resolved is None:
        raise CheckpointNotFoundError(
            f"spec.customWeightsPath: {value!r} names no complete checkpoint at {path} (a folder like ep2-ba300 "
            f"with a {COMPLETE_MARKER} marker, a run's `latest`, or an earlier run's name under {checkpoint_root})"
        )
    return resolved


def _checkpoint_at(path: Path) -> Path | None:
    if path.name == LATEST and path.is_file():
        return latest_checkpoint(path.parent)
    if path.is_dir():
        return path if is_complete(path) else latest_checkpoint(path)
    return None
