"""Reading records from every place training data may live, in a deterministic order.

One reader per form: JSONL and `.txt` files through fsspec (local paths, `file://`,
object stores, and PVCs resolved against the operator's mount root), Hugging Face
datasets and save_to_disk folders (hf_datasets), and Delta tables through delta-rs.
Every record keeps its origin (file and 1-based line or row) for error messages.
"""

import json
from collections.abc import Iterator
from pathlib import Path

from kubetune.api.locations import PVC_MOUNT_ROOT, Location
from kubetune.api.object_store import filesystem, read_error, read_errors
from kubetune.api.spec import TaskType

from .hf_datasets import drop_nulls, read_hf_dataset, read_saved_dataset, saved_dataset_kind
from .records import Origin, RawRecord
from .validation import DataProblem, DataValidationError

JSONL_SUFFIXES = (".jsonl", ".json")
TEXT_SUFFIX = ".txt"
DELTA_LOG = "_delta_log"


def read_records(
    location: Location,
    task_type: TaskType,
    *,
    pvc_mount_root: Path = Path(PVC_MOUNT_ROOT),
    dataset_root: Path | None = None,
    hf_cache_dir: Path | None = None,
) -> Iterator[RawRecord]:
    """All raw records at `location`; raises DataValidationError when the location holds no data files.

    `dataset_root`, when set, maps a Hugging Face dataset `org/name` to the folder
    `dataset_root/org/name` (an offline mirror of the hub) read by the same `load_dataset` call.
    """
    if location.kind == "huggingface":
        return read_hf_dataset(location, dataset_root=dataset_root, cache_dir=hf_cache_dir)
    url = resolve_url(location, pvc_mount_root)
    try:
        fs, path = filesystem(url)
        if fs.isdir(path) and fs.exists(f"{path.rstrip('/')}/{DELTA_LOG}"):
            return read_delta_table(url, display=location.uri)
        saved = saved_dataset_kind(fs, path) if fs.isdir(path) else None
        if saved is not None:
            return read_saved_dataset(url, saved, None, display=location.uri)
        files = _data_files(fs, path, location.uri, task_type)
    except DataValidationError:  # already names the location and the rule
        raise
    except read_errors() as err:  # no access, no such bucket, no fsspec implementation: the user's to fix
        reason = str(read_error(url, err)).removeprefix(f"{url}: ")  # one line, the URI first
        raise _location_error(location.uri, reason if reason.startswith("cannot read") else f"cannot read it: {reason}") from err
    return _read_files(fs, files, task_type)


def resolve_url(location: Location, pvc_mount_root: Path) -> str:
    """The URL fsspec opens: a PVC path becomes its mount point (the operator mounts CLAIM at ROOT/CLAIM)."""
    local = location.local_path(pvc_mount_root)
    return location.uri if local is None else str(local)


def _data_files(fs, path: str, display: str, task_type: TaskType) -> list[str]:
    if not fs.exists(path):
        raise _location_error(display, "no such file or folder")
    if fs.isfile(path):
        return [path]
    suffixes = (TEXT_SUFFIX,) if task_type is TaskType.CONTINUED_PRETRAIN else JSONL_SUFFIXES
    root = path.rstrip("/")
    files = sorted(
        f for f in fs.find(path) if f.endswith(suffixes) and not _is_hidden(f[len(root):])
    )
    if not files:
        raise _location_error(display, f"the folder holds no {' or '.join(suffixes)} files")
    return files


def _is_hidden(relative: str) -> bool:
    # Spark and notebooks leave _SUCCESS, .crc and .ipynb_checkpoints next to the data.
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _read_files(fs, files: list[str], task_type: TaskType) -> Iterator[RawRecord]:
    for file in files:
        display = _display_name(fs, file)
        if file.endswith(TEXT_SUFFIX) and task_type is TaskType.CONTINUED_PRETRAIN:
            yield read_text_file(fs, file, display)
        else:
            yield from read_jsonl_file(fs, file, display)


def _display_name(fs, file: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return file if protocol in ("file", "local") else fs.unstrip_protocol(file)


def read_jsonl_file(fs, file: str, display: str) -> Iterator[RawRecord]:
    """One record per non-blank line; a line that is not JSON becomes a record carrying the JSON error."""
    with fs.open(file, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            origin = Origin(display, number)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield RawRecord(origin, error=f"not valid UTF-8: {err.reason} at byte {err.start}")
                continue
            if not line.strip():
                continue
            try:
                yield RawRecord(origin, json.loads(line.rstrip()))
            except json.JSONDecodeError as err:
                yield RawRecord(origin, error=f"invalid JSON: {err.msg} (column {err.colno})")


def read_text_file(fs, file: str, display: str) -> RawRecord:
    """A continued-pretraining `.txt` file is one example."""
    with fs.open(file, "rb") as handle:
        data = handle.read()
    try:
        return RawRecord(Origin(display), data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        return RawRecord(Origin(display), error=f"not valid UTF-8: {err.reason} at byte {err.start}")


def read_delta_table(url: str, *, display: str) -> Iterator[RawRecord]:
    """Rows of a Delta table's current version, read with delta-rs (no Spark needed), in file order.

    One thread: Arrow's threaded scanner leaves threads that abort the process at exit (SIGABRT, "terminate
    called without an active exception", apache/arrow#34314) in about one run of three here: a validation
    pod that printed OK would fail. The tables a run reads fit one thread's time."""
    from deltalake import DeltaTable

    table = DeltaTable(url).to_pyarrow_dataset().to_table(use_threads=False)
    row = 0
    for batch in table.to_batches():
        for value in batch.to_pylist():
            row += 1
            yield RawRecord(Origin(display, row), drop_nulls(value))


def _location_error(display: str, rule: str) -> DataValidationError:
    return DataValidationError([DataProblem(display, None, rule)])
